package processor

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	cases := []struct {
		attempt int
		u       float64
		want    time.Duration
	}{
		{0, 0.5, 50 * time.Millisecond}, // ceiling Min
		{0, 0.999, 99900 * time.Microsecond},
		{1, 0.5, 100 * time.Millisecond}, // ceiling 2·Min
		{3, 1.0 - 1e-9, 800 * time.Millisecond},
		{5, 0.5, time.Second},  // 3.2 s capped at Max
		{80, 0.5, time.Second}, // no overflow on huge attempts
		{2, 0, 0},              // full jitter reaches zero
	}
	for _, tc := range cases {
		got := b.Delay(tc.attempt, tc.u)
		if diff := got - tc.want; diff > time.Microsecond || diff < -time.Microsecond {
			t.Errorf("Delay(%d, %v) = %v, want %v", tc.attempt, tc.u, got, tc.want)
		}
	}
}

// failing fails its first n calls with err.
type failing struct {
	n, calls int
	err      error
}

func (f *failing) Process(context.Context, *Delivery) error {
	f.calls++
	if f.calls <= f.n {
		return f.err
	}
	return nil
}

func TestRetry(t *testing.T) {
	transient := errors.New("storage unavailable")
	cases := []struct {
		name      string
		failures  int
		err       error
		attempts  int
		wantCalls int
		wantErr   bool
		wantWaits int
	}{
		{"succeeds first time", 0, transient, 0, 1, false, 0},
		{"recovers after failures", 3, transient, 0, 4, false, 3},
		{"gives up after attempts", 10, transient, 3, 3, true, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next := &failing{n: tc.failures, err: tc.err}
			var waits, retries int
			r := NewRetry(next, Backoff{Min: time.Millisecond, Max: time.Second, Attempts: tc.attempts},
				func(*Delivery, error) { retries++ }).(*retry)
			r.wait = func(context.Context, time.Duration) error { waits++; return nil }
			err := r.Process(context.Background(), delivery(newFakePartition(), "a"))
			if (err != nil) != tc.wantErr || next.calls != tc.wantCalls || waits != tc.wantWaits || retries != tc.wantWaits {
				t.Errorf("err=%v calls=%d waits=%d retries=%d; want err=%v calls=%d waits=%d",
					err, next.calls, waits, retries, tc.wantErr, tc.wantCalls, tc.wantWaits)
			}
		})
	}
}

// TestRetryGivesUpOnWritesThatTimeOut: writes that fail only after a timeout each (a
// backend that accepts connections and never answers) are handed to the failure policy,
// which holds the partition and says why, once they failed for twice as long as the
// attempts' backoff, not after every attempt's timeout (8 × 10 s by default).
func TestRetryGivesUpOnWritesThatTimeOut(t *testing.T) {
	backoff := Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second, Attempts: 8} // the defaults
	if got := backoff.patience(); got != 2*12700*time.Millisecond {
		t.Errorf("patience %v, want twice the waits' ceilings, 25.4 s", got)
	}
	var clock time.Time
	timingOut := processorFunc(func(context.Context, *Delivery) error {
		clock = clock.Add(10 * time.Second)
		return errors.New("context deadline exceeded")
	})
	r := NewRetry(timingOut, backoff, nil).(*retry)
	r.now = func() time.Time { return clock }
	waits := 0
	r.wait = func(_ context.Context, d time.Duration) error { waits++; clock = clock.Add(d); return nil }
	if err := r.Process(context.Background(), delivery(newFakePartition(), "a")); err == nil || waits != 2 {
		t.Errorf("err %v after %d waits, want an error after 2 (3 timeouts, 30 s)", err, waits)
	}
	if huge := (Backoff{Min: time.Hour, Max: 1 << 62, Attempts: 1000}); huge.patience() <= 0 {
		t.Errorf("patience %v of a backoff of years: it overflowed", huge.patience())
	}
	// One timeout longer than the patience (a storage timeout of 30 s), and the next try
	// writes: tried again, not sent to the failure policy.
	calls := 0
	once := processorFunc(func(context.Context, *Delivery) error {
		if calls++; calls == 1 {
			clock = clock.Add(30 * time.Second)
			return errors.New("context deadline exceeded")
		}
		return nil
	})
	r = NewRetry(once, backoff, nil).(*retry)
	r.now = func() time.Time { return clock }
	r.wait = func(_ context.Context, d time.Duration) error { clock = clock.Add(d); return nil }
	if err := r.Process(context.Background(), delivery(newFakePartition(), "a")); err != nil || calls != 2 {
		t.Errorf("one slow timeout, then a try that writes: %v after %d calls", err, calls)
	}
	// Failing at once, a write has every attempt, even with the longest waits.
	fast := &failing{n: 1 << 30, err: errors.New("connection refused")}
	r = NewRetry(fast, backoff, nil).(*retry)
	r.now = func() time.Time { return clock }
	r.wait = func(_ context.Context, d time.Duration) error {
		clock = clock.Add(backoff.Delay(fast.calls-1, 1))
		return nil
	}
	if err := r.Process(context.Background(), delivery(newFakePartition(), "a")); err == nil || fast.calls != 8 {
		t.Errorf("err %v after %d calls, want an error after 8", err, fast.calls)
	}
}

func TestRetryStopsWaitingOnCancel(t *testing.T) {
	next := &failing{n: 1 << 30, err: errors.New("down")}
	r := NewRetry(next, Backoff{Min: time.Hour, Max: time.Hour}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Process(ctx, delivery(newFakePartition(), "a")) }()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a cancelled retry reported success")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("retry sat out an hour-long backoff after cancel")
	}
}
