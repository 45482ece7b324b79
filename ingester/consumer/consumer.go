// Package consumer is the Kafka side of the ingester: consumer-group membership with
// kafka-go, one reader loop per assigned partition, and batched offset commits of the
// messages the processor chain has finished.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/segmentio/kafka-go"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/processor"
)

// stallBackoff is the wait before a message whose processing failed is tried again.
// The partition does not move past a message until it is processed.
const stallBackoff = time.Second

// Consumer reads a topic as a member of a consumer group and feeds every message to a
// processor, committing a partition's offset only past messages the processor finished.
type Consumer struct {
	cfg  config.Kafka
	proc processor.Processor
	log  logr.Logger
	// drainTimeout bounds how long in-flight processing may run after a stop or revoke.
	drainTimeout time.Duration

	assigned atomic.Int64
	joined   atomic.Bool
}

// New returns a consumer; Run starts it.
func New(cfg config.Kafka, proc processor.Processor, drainTimeout time.Duration, log logr.Logger) *Consumer {
	return &Consumer{cfg: cfg, proc: proc, log: log, drainTimeout: drainTimeout}
}

// AssignedPartitions is the number of partitions this member currently reads.
func (c *Consumer) AssignedPartitions() int { return int(c.assigned.Load()) }

// Joined reports whether this member is in a group generation. A member may hold no
// partition (more members than partitions) and still be a healthy, ready member.
func (c *Consumer) Joined() bool { return c.joined.Load() }

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
		Topics:            []string{c.cfg.Topic},
		SessionTimeout:    c.cfg.SessionTimeout.D(),
		HeartbeatInterval: c.cfg.HeartbeatInterval.D(),
		RebalanceTimeout:  c.cfg.RebalanceTimeout.D(),
		JoinGroupBackoff:  time.Second,
		// Partitions added to the topic are picked up by a rebalance.
		WatchPartitionChanges: true,
		StartOffset:           start,
		ErrorLogger:           kafka.LoggerFunc(func(msg string, args ...any) { c.log.Info("Kafka group: " + fmt.Sprintf(msg, args...)) }),
	})
	if err != nil {
		return fmt.Errorf("joining consumer group %q: %w", c.cfg.ConsumerGroup, err)
	}

	// Processing outlives the stop signal by at most the drain timeout, so a write that
	// is under way when SIGTERM arrives can still finish and be committed.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
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
	drain := time.AfterFunc(c.drainTimeout, cancelWork)
	defer drain.Stop()
	// Closing the group ends the current generation: kafka-go waits for the partition
	// loops, which finish their message and commit on the way out; then it leaves the group.
	return group.Close()
}

// runGeneration starts the work of one group generation: a loop per assigned partition and
// a committer. kafka-go ends the generation on rebalance or close and waits for them.
func (c *Consumer) runGeneration(gen *kafka.Generation, work context.Context) {
	assignments := gen.Assignments[c.cfg.Topic]
	c.log.Info("Joined consumer group", "group", gen.GroupID, "generation", gen.ID, "partitions", len(assignments))
	c.assigned.Store(int64(len(assignments)))
	c.joined.Store(true)
	offsets := newOffsets()
	gen.Start(func(ctx context.Context) {
		defer func() {
			c.assigned.Store(0)
			c.joined.Store(false)
		}()
		var loops sync.WaitGroup
		for _, a := range assignments {
			loops.Go(func() { c.consumePartition(ctx, work, a, offsets) })
		}
		ticker := time.NewTicker(c.cfg.CommitInterval.D())
		defer ticker.Stop()
		for {
			select {
			case <-ticker.C:
				c.commit(gen, offsets)
			case <-ctx.Done():
				loops.Wait()
				c.commit(gen, offsets)
				return
			}
		}
	})
}

// consumePartition reads one partition in order and processes each message until it
// succeeds; the partition never moves past a message that was not processed.
func (c *Consumer) consumePartition(ctx, work context.Context, a kafka.PartitionAssignment, offsets *offsets) {
	log := c.log.WithValues("partition", a.ID)
	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   c.cfg.Brokers,
		Topic:     c.cfg.Topic,
		Partition: a.ID,
		MinBytes:  c.cfg.MinBytes,
		MaxBytes:  c.cfg.MaxBytes,
		MaxWait:   c.cfg.MaxWait.D(),
	})
	defer reader.Close()
	if err := reader.SetOffset(a.Offset); err != nil {
		log.Error(err, "Cannot seek partition", "offset", a.Offset)
		return
	}
	for {
		msg, err := reader.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The broker may be restarting: keep trying until the generation ends.
			log.Info("Fetch failed, retrying", "error", err.Error())
			if wait(ctx, stallBackoff) != nil {
				return
			}
			continue
		}
		for {
			err := c.proc.Process(work, msg)
			if err == nil {
				offsets.done(msg.Partition, msg.Offset)
				break
			}
			log.Error(err, "Processing failed; the partition waits until this message is processed", "offset", msg.Offset)
			if wait(ctx, stallBackoff) != nil {
				return
			}
		}
	}
}

func (c *Consumer) commit(gen *kafka.Generation, offsets *offsets) {
	pending := offsets.pending()
	if len(pending) == 0 {
		return
	}
	if err := gen.CommitOffsets(map[string]map[int]int64{c.cfg.Topic: pending}); err != nil {
		c.log.Info("Offset commit failed; the offsets are committed later or the messages re-read", "error", err.Error())
		return
	}
	offsets.markCommitted(pending)
}

func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
