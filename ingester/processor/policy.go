package processor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/go-logr/logr"
	"github.com/segmentio/kafka-go"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/metrics"
)

// DeadLetterer produces a message that cannot be processed to the dead-letter topic.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, msg kafka.Message, cause error) error
}

// Policy says what happens to a message that retries could not get written.
type Policy struct {
	// OnDecodeError is config.OnDecodeErrorSkip, …Deadletter or …Fail.
	OnDecodeError string
	// DeadLetter is nil when no dead-letter topic is configured.
	DeadLetter DeadLetterer
	// Backoff paces the attempts while the partition is paused.
	Backoff Backoff
}

type failurePolicy struct {
	next   Processor
	policy Policy
	m      *metrics.Metrics
	log    logr.Logger
	// wait sleeps before pause-time attempt number attempt; a test replaces it.
	wait func(ctx context.Context, attempt int) error
}

// NewFailurePolicy applies the failure policy to what next (the retry decorator) gave up on:
//   - an undecodable message is skipped (only when OnDecodeError is skip, and counted),
//     dead-lettered, or, with fail, treated as a message that cannot be written;
//   - a message whose write kept failing, or was refused for good, is dead-lettered when
//     a topic is configured;
//   - otherwise the partition pauses — stops fetching and reports not-ready — and the
//     message is tried again with backoff until it succeeds. Nothing is ever skipped
//     silently; the only error returned is for a cancelled ctx.
func NewFailurePolicy(next Processor, policy Policy, m *metrics.Metrics, log logr.Logger) Processor {
	f := &failurePolicy{next: next, policy: policy, m: m, log: log}
	f.wait = func(ctx context.Context, attempt int) error {
		return sleep(ctx, policy.Backoff.Delay(attempt, rand.Float64()))
	}
	return f
}

func (f *failurePolicy) Process(ctx context.Context, msg kafka.Message) error {
	err := f.next.Process(ctx, msg)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	if IsDecodeFailure(err) && f.policy.OnDecodeError == config.OnDecodeErrorSkip {
		f.m.Skipped.Inc()
		f.log.Info("Skipping undecodable message (onDecodeError: skip)", "partition", msg.Partition, "offset", msg.Offset, "error", err.Error())
		return nil
	}
	// Writes that failed (even permanently, like a backend refusing the data) go to the
	// dead-letter topic when there is one; undecodable messages only when told so.
	deadLetter := f.policy.DeadLetter != nil &&
		(!IsDecodeFailure(err) || f.policy.OnDecodeError == config.OnDecodeErrorDeadletter)
	if deadLetter && f.deadLetter(ctx, msg, err) == nil {
		return nil
	}
	return f.pauseUntilDone(ctx, msg, err, deadLetter)
}

func (f *failurePolicy) deadLetter(ctx context.Context, msg kafka.Message, cause error) error {
	err := f.policy.DeadLetter.DeadLetter(ctx, msg, cause)
	if err != nil {
		return err
	}
	f.m.DeadLettered.Inc()
	f.log.Info("Dead-lettered message", "partition", msg.Partition, "offset", msg.Offset, "error", cause.Error())
	return nil
}

// pauseUntilDone pauses the partition and tries msg again — its processing, or its
// dead-lettering when that is the remedy — with backoff until it succeeds or ctx ends.
func (f *failurePolicy) pauseUntilDone(ctx context.Context, msg kafka.Message, cause error, deadLetter bool) error {
	if p := partitionOf(ctx); p != nil {
		p.Pause(fmt.Errorf("partition %d offset %d: %w", msg.Partition, msg.Offset, cause))
		defer p.Resume()
	}
	f.log.Error(cause, "Partition paused: a message can be neither written nor dead-lettered; trying again until it is",
		"partition", msg.Partition, "offset", msg.Offset)
	for attempt := 0; ; attempt++ {
		if err := f.wait(ctx, attempt); err != nil {
			return errors.Join(cause, err)
		}
		f.m.Retries.Inc()
		var err error
		if deadLetter {
			err = f.deadLetter(ctx, msg, cause)
		} else {
			err = f.next.Process(ctx, msg)
		}
		if err == nil {
			f.log.Info("Partition resumed", "partition", msg.Partition, "offset", msg.Offset)
			return nil
		}
		if !deadLetter {
			cause = err
		}
	}
}
