// Package consumer is the Kafka side of the ingester: consumer-group membership with
// kafka-go, one reader loop per assigned partition feeding the processor chain, and
// batched commits of the offsets the chain has finished.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/segmentio/kafka-go"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/metrics"
	"github.com/spanflow/spanflow/ingester/processor"
)

// fetchRetryWait is the pause after a failed fetch (the broker may be restarting).
const fetchRetryWait = 500 * time.Millisecond

// Consumer reads a topic as a member of a consumer group and hands every message to the
// processor chain, committing a partition's offset only past messages the chain finished.
type Consumer struct {
	cfg    config.Kafka
	dialer *kafka.Dialer
	chain  processor.Processor
	m      *metrics.Metrics
	log    logr.Logger
	// drainTimeout bounds the wait for in-flight messages of a revoked partition.
	drainTimeout time.Duration

	joined atomic.Bool
	mu     sync.Mutex
	// partitions of the current generation, for readiness.
	partitions map[int]*partition
}

// New returns a consumer; Run starts it. dialer connects to the brokers (with TLS and SASL
// as configured). chain must be safe for concurrent use: it is called from one goroutine
// per partition.
func New(cfg config.Kafka, dialer *kafka.Dialer, chain processor.Processor, drainTimeout time.Duration, m *metrics.Metrics, log logr.Logger) *Consumer {
	return &Consumer{cfg: cfg, dialer: dialer, chain: chain, m: m, log: log, drainTimeout: drainTimeout}
}

// Ready returns nil when this member is in the group and no partition is paused, or why not.
// A member holding no partition (more members than partitions) is ready.
func (c *Consumer) Ready() error {
	if !c.joined.Load() {
		return errors.New("not a member of the consumer group yet")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(c.partitions)) {
		if reason := c.partitions[id].pausedReason(); reason != nil {
			errs = append(errs, fmt.Errorf("paused: %w", reason))
		}
	}
	return errors.Join(errs...)
}

// Run consumes until ctx is cancelled, then stops fetching, lets in-flight messages finish
// (up to the drain timeout), commits, and leaves the group.
func (c *Consumer) Run(ctx context.Context) error {
	start := kafka.FirstOffset
	if c.cfg.InitialOffset == config.OffsetLatest {
		start = kafka.LastOffset
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                c.cfg.ConsumerGroup,
		Brokers:           c.cfg.Brokers,
		Dialer:            c.dialer,
		Topics:            []string{c.cfg.Topic},
		SessionTimeout:    c.cfg.SessionTimeout.D(),
		HeartbeatInterval: c.cfg.HeartbeatInterval.D(),
		RebalanceTimeout:  c.cfg.RebalanceTimeout.D(),
		JoinGroupBackoff:  time.Second,
		// Partitions added to the topic are picked up by a rebalance.
		WatchPartitionChanges: true,
		StartOffset:           start,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			c.log.V(1).Info("kafka-go: " + fmt.Sprintf(msg, args...))
		}),
	})
	if err != nil {
		return fmt.Errorf("consumer group %q: %w", c.cfg.ConsumerGroup, err)
	}
	// Processing is not cancelled by ctx: a stop first drains (see runGeneration).
	work := context.WithoutCancel(ctx)
	for {
		gen, err := group.Next(ctx)
		if err == nil {
			c.runGeneration(gen, work)
			continue
		}
		if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
			break
		}
		// kafka-go has already backed off before reporting the failed join.
		c.log.Info("Consumer group error, rejoining", "error", err.Error())
	}
	// Closing the group ends the current generation: kafka-go waits for its goroutines,
	// which drain and commit on the way out; then it leaves the group.
	return group.Close()
}

// runGeneration starts the work of one group generation: a loop per assigned partition and
// a committer. kafka-go ends the generation on rebalance or close and waits for them.
func (c *Consumer) runGeneration(gen *kafka.Generation, work context.Context) {
	assignments := gen.Assignments[c.cfg.Topic]
	parts := make(map[int]*partition, len(assignments))
	for _, a := range assignments {
		parts[a.ID] = newPartition(a, c.m.ForPartition(a.ID))
	}
	c.log.Info("Joined consumer group", "group", gen.GroupID, "generation", gen.ID, "partitions", slices.Sorted(maps.Keys(parts)))
	c.mu.Lock()
	c.partitions = parts
	c.mu.Unlock()
	c.joined.Store(true)
	c.m.Partitions.Set(float64(len(parts)))

	gen.Start(func(ctx context.Context) {
		var loops sync.WaitGroup
		for _, p := range parts {
			loops.Go(func() { c.consumePartition(ctx, work, p) })
		}
		ticker := time.NewTicker(c.cfg.CommitInterval.D())
		defer ticker.Stop()
		for {
			select {
			case <-ticker.C:
				c.commit(gen, parts)
			case <-ctx.Done():
				loops.Wait()
				c.commit(gen, parts)
				c.joined.Store(false)
				c.m.Partitions.Set(0)
				for id := range parts {
					c.m.ForgetPartition(id)
				}
				return
			}
		}
	})
}

// consumePartition fetches one partition in order and hands each message to the chain.
// When the generation ends it stops fetching, waits for the partition's in-flight messages
// up to the drain timeout, and then cancels what is left (it will be read again).
func (c *Consumer) consumePartition(genCtx, work context.Context, p *partition) {
	log := c.log.WithValues("partition", p.id)
	p.revoked = genCtx.Done()
	procCtx, cancelProc := context.WithCancel(processor.WithPartition(work, p))
	defer cancelProc()
	defer func() {
		drainCtx, cancel := context.WithTimeout(work, c.drainTimeout)
		defer cancel()
		if err := p.tracker.Wait(drainCtx); err != nil {
			log.Info("Partition released with messages still in flight; they will be read again", "inFlight", p.tracker.InFlight())
		}
	}()

	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   c.cfg.Brokers,
		Topic:     c.cfg.Topic,
		Partition: p.id,
		Dialer:    c.dialer,
		MinBytes:  c.cfg.MinBytes,
		MaxBytes:  c.cfg.MaxBytes,
		MaxWait:   c.cfg.MaxWait.D(),
	})
	defer reader.Close()
	if err := reader.SetOffset(p.start); err != nil {
		log.Error(err, "Cannot seek partition", "offset", p.start)
		return
	}
	for {
		if err := p.waitUnpaused(genCtx); err != nil {
			return
		}
		msg, err := reader.FetchMessage(genCtx)
		if err != nil {
			if genCtx.Err() != nil {
				return
			}
			log.Info("Fetch failed, retrying", "error", err.Error())
			if sleep(genCtx, fetchRetryWait) != nil {
				return
			}
			continue
		}
		p.gauges.LagRecords.Set(float64(msg.HighWaterMark - msg.Offset - 1))
		if !msg.Time.IsZero() {
			p.gauges.LagSeconds.Set(time.Since(msg.Time).Seconds())
		}
		p.tracker.Begin(msg.Offset)
		if err := c.chain.Process(procCtx, msg); err != nil {
			// Revoked (or stopped) before the hand-over: the message was never processed
			// and will be read again; the drain does not wait for it.
			p.tracker.Abandon(msg.Offset)
			return
		}
	}
}

// commit commits, in one request, every partition whose finished offset moved.
func (c *Consumer) commit(gen *kafka.Generation, parts map[int]*partition) {
	pending := map[int]int64{}
	for id, p := range parts {
		if next := p.tracker.Committable(); next >= 0 && next != p.committed {
			pending[id] = next
		}
	}
	if len(pending) == 0 {
		return
	}
	if err := gen.CommitOffsets(map[string]map[int]int64{c.cfg.Topic: pending}); err != nil {
		c.m.Commits.WithLabelValues("error").Inc()
		c.log.Info("Offset commit failed; it is retried, or the messages are read again", "error", err.Error())
		return
	}
	c.m.Commits.WithLabelValues("ok").Inc()
	for id, next := range pending {
		parts[id].committed = next
		parts[id].gauges.CommittedOffset.Set(float64(next))
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
