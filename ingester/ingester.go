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
	"github.com/spanflow/spanflow/ingester/decode"
	"github.com/spanflow/spanflow/ingester/processor"
	"github.com/spanflow/spanflow/ingester/store"
)

// Chain assembles the processor chain around the base processor (decode, then write).
// Order, outermost first: retry → base. The retry never gives up (Attempts 0): the
// partition waits rather than skip a message it could not write.
func Chain(decoder decode.Decoder, writer processor.Writer, log logr.Logger) processor.Processor {
	base := processor.NewBase(decoder, writer)
	return processor.NewRetry(base, processor.Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second},
		func(msg kafka.Message, err error) {
			log.Info("Retrying message", "partition", msg.Partition, "offset", msg.Offset, "error", err.Error())
		})
}

// Run ingests until ctx is cancelled, then drains, commits and closes the writer.
// writer may be nil, in which case the one the config names is created.
func Run(ctx context.Context, cfg config.Config, writer store.Writer, log logr.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	decoder, err := decode.New(cfg.Encoding)
	if err != nil {
		return err
	}
	if writer == nil {
		if writer, err = store.New(cfg.Storage); err != nil {
			return err
		}
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	cons := consumer.New(cfg.Kafka, Chain(decoder, writer, log), cfg.ShutdownTimeout.D(), log)
	adminServer, err := admin.Listen(cfg.AdminAddress, registry, func() error {
		if !cons.Joined() {
			return errors.New("not a member of the consumer group yet")
		}
		return nil
	})
	if err != nil {
		return err
	}
	log.Info("Ingesting", "topic", cfg.Kafka.Topic, "group", cfg.Kafka.ConsumerGroup,
		"encoding", cfg.Encoding, "storage", cfg.Storage.Type, "admin", adminServer.Addr())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return adminServer.Run(gctx) })
	g.Go(func() error { return cons.Run(gctx) })
	err = g.Wait()
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout.D())
	defer cancel()
	return errors.Join(err, writer.Close(closeCtx))
}
