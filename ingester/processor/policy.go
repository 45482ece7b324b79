package processor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/segmentio/kafka-go"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/eventlog"
	"github.com/spanflow/spanflow/ingester/metrics"
)

// DeadLetterer produces a message that cannot be processed to the dead-letter topic.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, msg kafka.Message, cause error) error
}

// Policy says what happens to messages that could not be written.
type Policy struct {
	// OnDecodeError is config.OnDecodeErrorSkip, …Deadletter or …Fail.
	OnDecodeError string
	// DeadLetter is nil when no dead-letter topic is configured.
	DeadLetter DeadLetterer
	// Backoff paces the attempts while the partition is held.
	Backoff Backoff
}

// Logs of the failure policy's repeated events.
type PolicyLogs struct {
	DeadLettered *eventlog.Repeated
	Skipped      *eventlog.Repeated
}

type failurePolicy struct {
	next   Processor
	policy Policy
	m      *metrics.Metrics
	logs   PolicyLogs
	// wait sleeps before held attempt number attempt; a test replaces it.
	wait func(ctx context.Context, attempt int) error
}

// remedy is what the policy does with a message that failed.
type remedy uint8

const (
	remedySkip remedy = iota
	remedyDeadLetter
	// remedyRetry holds the partition and tries the message again until it is written.
	remedyRetry
)

// NewFailurePolicy decides the fate of what next (the retry decorator) could not write:
//   - a transient failure that outlasted the retries (storage down, throttling, refusing
//     credentials) is never a message's fault: the partition is held — it stops fetching
//     and reports not-ready — and the delivery is tried again with backoff until it is
//     written. Nothing is dead-lettered for it;
//   - an undecodable message is skipped (only with onDecodeError skip, and counted),
//     dead-lettered (with deadletter), or, with fail, held like a refused one;
//   - a message storage refused for good is dead-lettered when a topic is configured, and
//     otherwise holds the partition and is tried again until it is written.
//
// Only the failed messages are affected; the rest of the delivery is written. Nothing is
// ever skipped silently; the only error returned is for a cancelled ctx, with the delivery
// unfinished (it is read again).
func NewFailurePolicy(next Processor, policy Policy, m *metrics.Metrics, logs PolicyLogs) Processor {
	f := &failurePolicy{next: next, policy: policy, m: m, logs: logs}
	f.wait = func(ctx context.Context, attempt int) error {
		return sleep(ctx, policy.Backoff.Delay(attempt, rand.Float64()))
	}
	return f
}

func (f *failurePolicy) Process(ctx context.Context, d *Delivery) error {
	err := f.next.Process(ctx, d)
	var held error
	release := func() {}
	defer func() { release() }()
	for attempt := 0; ; attempt++ {
		if err == nil {
			if err = f.dispose(ctx, d); err == nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			return err
		}
		if held == nil || held.Error() != err.Error() {
			// The new hold before the old one's release: the partition stays paused.
			previous := release
			release, held = d.Partition.Hold(HeldFrom{First: d.First(), Err: err}), err
			previous()
		}
		if werr := f.wait(ctx, attempt); werr != nil {
			return errors.Join(err, werr)
		}
		f.m.Retries.Inc()
		f.reopen(d)
		err = f.next.Process(ctx, d)
	}
}

func (f *failurePolicy) remedy(v Verdict) remedy {
	switch {
	case v == Undecodable && f.policy.OnDecodeError == config.OnDecodeErrorSkip:
		return remedySkip
	case v == Undecodable && f.policy.OnDecodeError == config.OnDecodeErrorDeadletter && f.policy.DeadLetter != nil:
		return remedyDeadLetter
	case v == Refused && f.policy.DeadLetter != nil:
		return remedyDeadLetter
	}
	return remedyRetry
}

// dispose skips and dead-letters the failed messages that the policy says to, and returns
// why the others cannot be finished yet, or nil when every message is finished.
func (f *failurePolicy) dispose(ctx context.Context, d *Delivery) error {
	var first error
	stuck := 0
	for i, v := range d.verdicts {
		if v != Undecodable && v != Refused {
			continue
		}
		msg, cause := &d.Messages[i], d.Cause(i)
		var err error
		switch f.remedy(v) {
		case remedySkip:
			d.Set(i, Skipped, nil)
			f.m.Skipped.Inc()
			f.logs.Skipped.Event(nil, "partition", msg.Partition, "offset", msg.Offset, "error", cause.Error())
			continue
		case remedyDeadLetter:
			if err = f.policy.DeadLetter.DeadLetter(ctx, *msg, cause); err == nil {
				d.Set(i, DeadLettered, nil)
				f.m.DeadLettered.Inc()
				f.logs.DeadLettered.Event(nil, "partition", msg.Partition, "offset", msg.Offset, "error", cause.Error())
				continue
			}
			err = fmt.Errorf("dead-lettering partition %d offset %d: %w", msg.Partition, msg.Offset, err)
		case remedyRetry:
			err = cause
		}
		if stuck++; first == nil {
			first = err
		}
	}
	if stuck > 1 {
		return fmt.Errorf("%w (and %d more messages)", first, stuck-1)
	}
	return first
}

// reopen makes the messages that are tried again pending, for the next attempt.
func (f *failurePolicy) reopen(d *Delivery) {
	for i, v := range d.verdicts {
		if (v == Undecodable || v == Refused) && f.remedy(v) == remedyRetry {
			d.reopen(i)
		}
	}
}

// HeldFrom is why a delivery holds its partition, and the offset it begins at: of the
// holds of a partition, the lowest is the one its commits wait on, and the one to name.
type HeldFrom struct {
	First int64
	Err   error
}

func (h HeldFrom) Error() string { return h.Err.Error() }
func (h HeldFrom) Unwrap() error { return h.Err }
