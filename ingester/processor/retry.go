package processor

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// Backoff configures exponential backoff with full jitter: the n-th wait is uniform in
// [0, min(Max, Min·2ⁿ)].
type Backoff struct {
	Min, Max time.Duration
	// Attempts bounds the calls of the wrapped processor; 0 means no bound.
	Attempts int
}

// Delay returns the wait before retry number attempt (0-based), given a uniform sample
// u in [0, 1).
func (b Backoff) Delay(attempt int, u float64) time.Duration {
	ceiling := b.Max
	if attempt < 62 {
		if d := b.Min << attempt; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	return time.Duration(u * float64(ceiling))
}

// patience is how long a delivery's write may keep failing before the failure policy
// applies, once it was tried patientAttempts times, whatever the attempts left: twice
// what the attempts' backoff waits at most. A write that fails at once runs out of
// attempts well within it; one that fails by timing out (a backend that accepts
// connections and never answers) took Attempts timeouts — 80 s by default — before its
// partition was held and readiness said why.
func (b Backoff) patience() time.Duration {
	var waits time.Duration
	for attempt := range b.Attempts - 1 {
		d := b.Delay(attempt, 1)
		if d >= math.MaxInt64/2-waits {
			return math.MaxInt64 // a backoff of centuries: no limit to speak of
		}
		waits += d
	}
	return 2 * waits
}

// patientAttempts are the tries a write always has (unless Attempts allows fewer),
// however long they take: one timeout longer than the patience (a storage timeout of
// 30 s) would otherwise send a write that the next try writes to the failure policy,
// its partition held and readiness false.
const patientAttempts = 3

type retry struct {
	next    Processor
	backoff Backoff
	// wait sleeps for d or until ctx is done, now tells the time; a test replaces them.
	wait func(ctx context.Context, d time.Duration) error
	now  func() time.Time
	// patience is backoff.patience(), computed once.
	patience time.Duration
	// onRetry is told of each failed attempt that will be retried.
	onRetry func(d *Delivery, err error)
}

// NewRetry retries a delivery whose write failed transiently, with backoff and at most
// backoff.Attempts calls, for at most the backoff's patience; each call writes only what
// is still pending. Waits end early when
// ctx is done (shutdown never sits out a backoff). onRetry may be nil.
func NewRetry(next Processor, backoff Backoff, onRetry func(*Delivery, error)) Processor {
	if onRetry == nil {
		onRetry = func(*Delivery, error) {}
	}
	return &retry{next: next, backoff: backoff, wait: sleep, now: time.Now, onRetry: onRetry, patience: backoff.patience()}
}

func (r *retry) Process(ctx context.Context, d *Delivery) error {
	start := r.now()
	for attempt := 0; ; attempt++ {
		err := r.next.Process(ctx, d)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if r.backoff.Attempts > 0 && (attempt+1 >= r.backoff.Attempts || attempt+1 >= patientAttempts && r.now().Sub(start) >= r.patience) {
			return err
		}
		r.onRetry(d, err)
		if werr := r.wait(ctx, r.backoff.Delay(attempt, rand.Float64())); werr != nil {
			return err
		}
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
