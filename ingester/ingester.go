// Package ingester is the workload `spanflow ingest`: it reads spans from a Kafka topic and
// writes them to trace storage through the processor chain, committing an offset only
// after the spans before it are stored. Its parts live in the subpackages.
package ingester

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
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
	"github.com/spanflow/spanflow/ingester/eventlog"
	"github.com/spanflow/spanflow/ingester/kafkaclient"
	"github.com/spanflow/spanflow/ingester/metrics"
	"github.com/spanflow/spanflow/ingester/processor"
	"github.com/spanflow/spanflow/ingester/store"
)

// closeTimeout bounds closing the dead-letter producer and the storage writer.
const closeTimeout = 10 * time.Second

// maxDeliveryBytes bounds the message bytes of one delivery, and so of one storage request:
// well under the 4 MiB that gRPC servers (the OpenTelemetry Collector, Jaeger, Tempo)
// accept by default. A request refused for its size is split anyway.
const maxDeliveryBytes = 2 << 20

// summaryInterval is how often repeated events (dead letters, skips, rejected spans) are
// summarized in the log after the first of them.
const summaryInterval = 10 * time.Second

// Chain is the processor chain over deliveries, outermost first:
//
//	parallel → metrics → committing → failure policy → retry → base (decode, write)
//
// parallel bounds the deliveries (storage writes) and bytes in flight; metrics times each
// delivery from hand-over to finish; committing marks a delivery finished only when what
// is inside returned nil; the failure policy turns the messages that could not be written
// into dead letters or explicit skips, and holds the partition while storage is down or a
// message can be neither written nor dead-lettered; retry backs off on failed writes; base
// decodes each message and writes the delivery's spans in one request, splitting it when
// storage refuses it for good.
type Chain struct {
	processor.Processor
	parallel *processor.Parallel
	logs     []*eventlog.Repeated
	// retries counts the writes tried again (the load report's sign of storage failing).
	retries *atomic.Int64
}

// NewChain assembles the chain. Close it after the consumer stopped handing it deliveries.
func NewChain(cfg config.Config, decoder decode.Decoder, writer processor.Writer,
	deadLetter processor.DeadLetterer, m *metrics.Metrics, log logr.Logger) *Chain {
	rejected := eventlog.Info(log, "The backend refused some spans of a write (partial success); they are counted, not sent again", summaryInterval)
	logs := processor.PolicyLogs{
		DeadLettered: eventlog.Info(log, "Dead-lettered messages", summaryInterval),
		Skipped:      eventlog.Info(log, "Skipped undecodable messages (onDecodeError: skip)", summaryInterval),
	}
	backoff := processor.Backoff{Min: cfg.Processing.Retry.Min.D(), Max: cfg.Processing.Retry.Max.D(), Attempts: cfg.Processing.Retry.Attempts}
	retries := &atomic.Int64{}
	var p processor.Processor = processor.NewBase(decoder, writer, cfg.Processing.BatchSize, cfg.Processing.BatchLinger.D(), m, rejected)
	p = processor.NewRetry(p, backoff, func(d *processor.Delivery, err error) {
		m.Retries.Inc()
		retries.Add(1)
		log.V(1).Info("Retrying delivery", "partition", d.Partition.ID(), "fromOffset", d.First(), "error", err.Error())
	})
	p = processor.NewFailurePolicy(p, processor.Policy{
		OnDecodeError: cfg.Processing.OnDecodeError,
		DeadLetter:    deadLetter,
		Backoff:       processor.Backoff{Min: backoff.Min, Max: backoff.Max},
	}, m, logs)
	p = processor.NewCommitting(p)
	p = processor.NewMetrics(p, m)
	parallel := processor.NewParallel(p, cfg.Parallelism, cfg.MaxInFlightBytes, func(d *processor.Delivery, err error) {
		log.V(1).Info("Delivery left unfinished; it will be read again", "partition", d.Partition.ID(), "fromOffset", d.First(), "error", err.Error())
	})
	m.Parallelism.Set(float64(cfg.Parallelism))
	return &Chain{Processor: parallel, parallel: parallel, logs: []*eventlog.Repeated{rejected, logs.DeadLettered, logs.Skipped}, retries: retries}
}

// Reserve holds a slot for a delivery still to be formed (processor.Reserver).
func (c *Chain) Reserve(ctx context.Context, revoked <-chan struct{}) (*processor.Reservation, error) {
	return c.parallel.Reserve(ctx, revoked)
}

// Close waits for the deliveries already handed over and writes the last log summaries.
func (c *Chain) Close() {
	c.parallel.Close()
	for _, l := range c.logs {
		l.Close()
	}
}

// Options are the parts a caller (a test, the demo) may supply instead of the configured ones.
type Options struct {
	// Writer replaces the storage writer the config names.
	Writer store.Writer
	// Registry receives the metrics; a new one is made when nil.
	Registry *prometheus.Registry
	// AdminReady, if set, is told the admin server's address once it listens.
	AdminReady func(addr string)
	// Decoder replaces the decoder the encoding names (benchmarks measure the chain alone).
	Decoder decode.Decoder
	// Reload, if set, reads the configuration again (as it was first read: file, then
	// overrides); a new parallelism in it is applied while running.
	Reload func() (config.Config, error)
	// ReloadInterval is how often Reload is called; 5 s when zero.
	ReloadInterval time.Duration
	// LoadReportInterval is how long each load report in the commit metadata measures;
	// 10 s when zero.
	LoadReportInterval time.Duration
}

// Run ingests until ctx is cancelled, then drains, commits and closes the writer.
func Run(ctx context.Context, cfg config.Config, opts Options, log logr.Logger) (err error) {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	decoder := opts.Decoder
	if decoder == nil {
		if decoder, err = decode.New(cfg.Encoding); err != nil {
			return err
		}
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
	metrics.RegisterLibraryDecodes(registry, decode.LibraryDecodes(decoder))

	conn, err := kafkaclient.New(cfg.Kafka)
	if err != nil {
		return err
	}
	var deadLetter processor.DeadLetterer
	if topic := cfg.Processing.DeadLetterTopic; topic != "" {
		dl := deadletter.New(cfg.Kafka.Brokers, topic, conn.Transport())
		defer func() { err = errors.Join(err, dl.Close(closeTimeout)) }()
		deadLetter = dl
		check := conn.Transport()
		warnIfMissing(ctx, &kafka.Client{Addr: kafka.TCP(cfg.Kafka.Brokers...), Transport: check}, topic, log)
		check.CloseIdleConnections()
	}
	chain := NewChain(cfg, decoder, writer, deadLetter, m, log)
	metadata := conn.Transport() // the consumer's fetches and metadata requests (is the topic there?)
	defer metadata.CloseIdleConnections()
	reports := conn.Transport() // the load reports' commits, reset apart after a failed one
	defer reports.CloseIdleConnections()
	// Every commit carries this pod's load report for the operator's autoscaler.
	var meter *loadMeter
	cons := consumer.New(consumer.Settings{
		Kafka:            cfg.Kafka,
		DeliverySpans:    cfg.Processing.BatchSize,
		DeliveryBytes:    min(maxDeliveryBytes, cfg.MaxInFlightBytes),
		FetchedBytes:     cfg.MaxInFlightBytes,
		Linger:           cfg.Processing.BatchLinger.D(),
		DrainTimeout:     cfg.DrainTimeout.D(),
		CommitMetadata:   func(partitions []int) string { return meter.Report(partitions) },
		MetadataInterval: cmp.Or(opts.LoadReportInterval, loadReportInterval),
		ReportClient:     &kafka.Client{Addr: kafka.TCP(cfg.Kafka.Brokers...), Transport: reports},
	}, conn.Dialer(), &kafka.Client{Addr: kafka.TCP(cfg.Kafka.Brokers...), Transport: metadata}, chain, m, log)
	meter = newLoadMeter(chain, cmp.Or(opts.LoadReportInterval, loadReportInterval), cons.Blocked, cons.HeldBy, cons.LastPause)
	adminServer, err := admin.Listen(cfg.AdminAddress, registry, cons.Ready, cfg.Profiling)
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
	g.Go(func() error {
		// A stop is said as it begins: with storage down the drain takes all its time,
		// and the process said nothing until it ended.
		<-gctx.Done()
		if ctx.Err() != nil {
			log.Info("Stopping: deliveries in flight are finished and committed for at most the drain timeout; the rest is read again by the next owner",
				"drainTimeout", cfg.DrainTimeout.D().String())
		}
		return nil
	})
	g.Go(func() error { return adminServer.Run(gctx) })
	g.Go(func() error { return cons.Run(gctx) })
	if opts.Reload != nil {
		interval := cmp.Or(opts.ReloadInterval, defaultReloadInterval)
		g.Go(func() error { return followParallelism(gctx, opts.Reload, interval, cfg, chain, m, log) })
	}
	err = g.Wait()
	// Every delivery is finished or abandoned before the writer closes: nothing is
	// written after Close.
	chain.Close()
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	if cerr := writer.Close(closeCtx); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing storage writer: %w", cerr))
	}
	log.Info("Stopped")
	return err
}

// warnIfMissing says at start-up when the dead-letter topic does not exist: the first
// message sent there would otherwise be how one learns it, holding its partition. Asked
// without creating the topic, and briefly: brokers that do not answer are the consumer's
// to report.
func warnIfMissing(ctx context.Context, client *kafka.Client, topic string, log logr.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return
	}
	for _, t := range meta.Topics {
		if t.Name == topic && (t.Error != nil || len(t.Partitions) == 0) {
			log.Error(t.Error, "The dead-letter topic does not exist: a message sent there will hold its partition until the topic is created", "topic", topic)
		}
	}
}
