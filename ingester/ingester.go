// Package ingester is the workload `spanflow ingest`: it reads spans from a Kafka topic and
// writes them to trace storage through the processor chain, committing an offset only
// after the spans before it are stored. Its parts live in the subpackages.
package ingester

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/spanflow/spanflow/ingester/admin"
	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/consumer"
	"github.com/spanflow/spanflow/ingester/deadletter"
	"github.com/spanflow/spanflow/ingester/decode"
	"github.com/spanflow/spanflow/ingester/kafkaclient"
	"github.com/spanflow/spanflow/ingester/metrics"
	"github.com/spanflow/spanflow/ingester/processor"
	"github.com/spanflow/spanflow/ingester/store"
)

// closeTimeout bounds closing the dead-letter producer and the storage writer.
const closeTimeout = 10 * time.Second

// Chain is the processor chain, outermost first:
//
//	parallel → metrics → committing → failure policy → retry → base (decode, batch, write)
//
// parallel bounds the messages and bytes in flight; metrics times each message from hand-over
// to finish; committing marks a message finished only when what is inside returned nil; the
// failure policy turns what retries gave up on into a dead letter, an explicit skip, or a
// paused partition; retry backs off on failed writes; base decodes and writes in batches.
type Chain struct {
	processor.Processor
	parallel *processor.Parallel
}

// NewChain assembles the chain. Close it after the consumer stopped handing it messages.
func NewChain(ctx context.Context, cfg config.Config, decoder decode.Decoder, writer processor.Writer,
	deadLetter processor.DeadLetterer, m *metrics.Metrics, log logr.Logger) *Chain {
	batcher := processor.NewBatcher(ctx, writer, cfg.Processing.BatchSize, cfg.Parallelism, cfg.Processing.BatchLinger.D())
	backoff := processor.Backoff{Min: cfg.Processing.Retry.Min.D(), Max: cfg.Processing.Retry.Max.D(), Attempts: cfg.Processing.Retry.Attempts}
	var p processor.Processor = processor.NewBase(decoder, batcher, m)
	p = processor.NewRetry(p, backoff, func(msg kafka.Message, err error) {
		m.Retries.Inc()
		log.V(1).Info("Retrying message", "partition", msg.Partition, "offset", msg.Offset, "error", err.Error())
	})
	p = processor.NewFailurePolicy(p, processor.Policy{
		OnDecodeError: cfg.Processing.OnDecodeError,
		DeadLetter:    deadLetter,
		Backoff:       processor.Backoff{Min: backoff.Min, Max: backoff.Max},
	}, m, log)
	p = processor.NewCommitting(p)
	p = processor.NewMetrics(p, m)
	parallel := processor.NewParallel(p, cfg.Parallelism, cfg.MaxInFlightBytes, func(msg kafka.Message, err error) {
		log.V(1).Info("Message left unfinished; it will be read again", "partition", msg.Partition, "offset", msg.Offset, "error", err.Error())
	})
	return &Chain{Processor: parallel, parallel: parallel}
}

// Close waits for the messages already handed over and stops the workers.
func (c *Chain) Close() { c.parallel.Close() }

// Options are the parts a caller (a test, the demo) may supply instead of the configured ones.
type Options struct {
	// Writer replaces the storage writer the config names.
	Writer store.Writer
	// Registry receives the metrics; a new one is made when nil.
	Registry *prometheus.Registry
	// AdminReady, if set, is told the admin server's address once it listens.
	AdminReady func(addr string)
}

// Run ingests until ctx is cancelled, then drains, commits and closes the writer.
func Run(ctx context.Context, cfg config.Config, opts Options, log logr.Logger) (err error) {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	decoder, err := decode.New(cfg.Encoding)
	if err != nil {
		return err
	}
	writer := opts.Writer
	if writer == nil {
		if writer, err = store.New(cfg.Storage); err != nil {
			return err
		}
	}
	registry := opts.Registry
	if registry == nil {
		registry = prometheus.NewRegistry()
		registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := metrics.New(registry)

	conn, err := kafkaclient.New(cfg.Kafka)
	if err != nil {
		return err
	}
	var deadLetter processor.DeadLetterer
	if topic := cfg.Processing.DeadLetterTopic; topic != "" {
		dl := deadletter.New(cfg.Kafka.Brokers, topic, conn.Transport())
		defer func() { err = errors.Join(err, dl.Close(closeTimeout)) }()
		deadLetter = dl
	}
	// Storage writes outlive ctx: the drain after a stop still needs them.
	work := context.WithoutCancel(ctx)
	chain := NewChain(work, cfg, decoder, writer, deadLetter, m, log)
	cons := consumer.New(cfg.Kafka, conn.Dialer(), chain, cfg.DrainTimeout.D(), m, log)
	adminServer, err := admin.Listen(cfg.AdminAddress, registry, cons.Ready)
	if err != nil {
		chain.Close()
		return err
	}
	if opts.AdminReady != nil {
		opts.AdminReady(adminServer.Addr())
	}
	log.Info("Ingesting", "topic", cfg.Kafka.Topic, "group", cfg.Kafka.ConsumerGroup, "encoding", cfg.Encoding,
		"storage", cfg.Storage.Type, "parallelism", cfg.Parallelism, "admin", adminServer.Addr())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return adminServer.Run(gctx) })
	g.Go(func() error { return cons.Run(gctx) })
	err = g.Wait()
	chain.Close()
	closeCtx, cancel := context.WithTimeout(work, closeTimeout)
	defer cancel()
	if cerr := writer.Close(closeCtx); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing storage writer: %w", cerr))
	}
	log.Info("Stopped")
	return err
}
