package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spanflow/spanflow/ingester/failure"
	"github.com/spanflow/spanflow/ingester/otlpwire"
)

// concWriter records the most storage writes in flight at once. fail decides a write's
// error from its span names and its number (0-based); a write that does not fail takes
// hold.
type concWriter struct {
	now, most atomic.Int64
	n         atomic.Int64
	hold      time.Duration
	fail      func(names []string, n int64) error
	mu        sync.Mutex
	stored    []string
}

func (w *concWriter) Write(ctx context.Context, req otlpwire.Request) error {
	td, err := req.Traces()
	if err != nil {
		return err
	}
	names := spanNames(td)
	n := w.n.Add(1) - 1
	c := w.now.Add(1)
	defer w.now.Add(-1)
	for {
		m := w.most.Load()
		if c <= m || w.most.CompareAndSwap(m, c) {
			break
		}
	}
	if w.fail != nil {
		if err := w.fail(names, n); err != nil {
			return err
		}
	}
	time.Sleep(w.hold)
	w.mu.Lock()
	w.stored = append(w.stored, names...)
	w.mu.Unlock()
	return nil
}

// peakInFlight samples p's inFlight until stop is closed, and returns the highest.
func peakInFlight(p *Parallel, stop <-chan struct{}) <-chan int {
	out := make(chan int, 1)
	go func() {
		most := 0
		for {
			n, _, _ := inFlightSlots(p)
			most = max(most, n)
			select {
			case <-stop:
				out <- most
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	return out
}

func handOver(t *testing.T, p *Parallel, ds []*Delivery) {
	t.Helper()
	for _, d := range ds {
		if err := p.Process(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
}

// TestARefusedJointWriteIsResentWithinTheParallelism: a joint write of 20 deliveries that
// storage refuses for good (one bad span) is sent again request by request, no more of
// them at once than the parallelism (every one at once, before: 20 at a parallelism of 2).
func TestARefusedJointWriteIsResentWithinTheParallelism(t *testing.T) {
	w := &concWriter{hold: 50 * time.Millisecond, fail: func(names []string, _ int64) error {
		if len(names) > 1 && slices.Contains(names, "x") {
			return failure.Permanent(errors.New("invalid span x"))
		}
		return nil
	}}
	p := NewParallel(NewBase(textDecoder{}, w, 1000, 300*time.Millisecond, newMetrics(), quiet()), 2, 0, func(*Delivery, error) {})
	stop := make(chan struct{})
	peak := peakInFlight(p, stop)
	var ds []*Delivery
	for i := range 20 {
		v := fmt.Sprint("a", i)
		if i == 5 {
			v = "x"
		}
		ds = append(ds, delivery(newFakePartition(), v))
	}
	handOver(t, p, ds)
	p.Close()
	close(stop)
	if most, slots := w.most.Load(), <-peak; most > 2 {
		t.Errorf("parallelism 2: %d storage writes at once, %d slots taken at once (%d writes)", most, slots, w.n.Load())
	}
}

// TestALimitLoweredWhileDeliveriesWaitHoldsForTheirRetries: the parallelism lowered to 1
// while deliveries wait in a joint write that then fails: their retries, alone, are
// written one at a time (10 at once, before).
func TestALimitLoweredWhileDeliveriesWaitHoldsForTheirRetries(t *testing.T) {
	w := &concWriter{hold: 50 * time.Millisecond, fail: func(_ []string, n int64) error {
		if n == 0 {
			return errors.New("connection refused")
		}
		return nil
	}}
	b := NewBase(textDecoder{}, w, 1000, 200*time.Millisecond, newMetrics(), quiet()).(*base)
	chain := NewRetry(b, Backoff{Min: time.Millisecond, Max: time.Millisecond}, nil)
	p := NewParallel(chain, 2, 0, func(*Delivery, error) {})
	var ds []*Delivery
	for i := range 10 {
		ds = append(ds, delivery(newFakePartition(), fmt.Sprint("a", i)))
	}
	handOver(t, p, ds)
	waitFor(t, "10 deliveries to join", func() bool {
		b.writes.mu.Lock()
		defer b.writes.mu.Unlock()
		return b.writes.open != nil && len(b.writes.open.parts) == 10
	})
	p.SetLimit(1)
	p.Close()
	if most := w.most.Load(); most > 1 {
		t.Errorf("parallelism 1: %d storage writes at once (%d writes)", most, w.n.Load())
	}
}

// TestRetriesAfterAnOutageStayWithinTheParallelism: storage fails for a while; the
// retries of the deliveries of failed joint writes, spread by the backoff's jitter, each
// lead a write of their own: still no more at once than the parallelism, against a
// backend that just came back.
func TestRetriesAfterAnOutageStayWithinTheParallelism(t *testing.T) {
	start := time.Now()
	w := &concWriter{hold: 300 * time.Millisecond, fail: func(_ []string, n int64) error {
		if time.Since(start) < 100*time.Millisecond {
			return errors.New("connection refused")
		}
		return nil
	}}
	chain := NewRetry(NewBase(textDecoder{}, w, 1000, 5*time.Millisecond, newMetrics(), quiet()), Backoff{Min: 200 * time.Millisecond, Max: 200 * time.Millisecond}, nil)
	p := NewParallel(chain, 2, 0, func(*Delivery, error) {})
	stop := make(chan struct{})
	peak := peakInFlight(p, stop)
	var ds []*Delivery
	for i := range 40 {
		ds = append(ds, delivery(newFakePartition(), fmt.Sprint("a", i)))
	}
	handOver(t, p, ds)
	p.Close()
	close(stop)
	if most, slots := w.most.Load(), <-peak; most > 2 {
		t.Errorf("parallelism 2: %d storage writes at once, %d slots taken at once (%d writes)", most, slots, w.n.Load())
	}
}

// TestALingeringLeaderIsNotBusy: a live topic's trickle — a delivery of one span every
// 20 ms, each written in microseconds — at a parallelism of 8: the delivery waiting for
// others to join its write holds its slot, but the load does not count it busy (it did:
// 1/8 of the slots in use doing nearly nothing, which the operator reads as a slot's
// capacity).
func TestALingeringLeaderIsNotBusy(t *testing.T) {
	for _, linger := range []time.Duration{0, 100 * time.Millisecond} {
		t.Run(fmt.Sprint("linger ", linger), func(t *testing.T) {
			w := &scriptedWriter{}
			p := NewParallel(NewBase(textDecoder{}, w, 1000, linger, newMetrics(), quiet()), 8, 0, func(*Delivery, error) {})
			before := p.Load()
			for i := range 50 {
				if err := p.Process(context.Background(), delivery(newFakePartition(), fmt.Sprint("s", i))); err != nil {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			after := p.Load()
			p.Close()
			share := float64(after.Busy-before.Busy) / float64(after.Slots-before.Slots)
			t.Logf("busy %.3f of the slots, %d storage writes", share, w.writes)
			if share >= 0.05 {
				t.Errorf("busy %.3f of 8 slots for %d writes of a few µs in 1 s", share, w.writes)
			}
		})
	}
}

// TestWaitingDeliveriesAreBounded: at a parallelism of 2, fed by 64 partitions' loops
// (Reserve, form, Start) with 1-span deliveries and storage taking 200 ms a write, the
// deliveries in flight stay within what the joint writes' size allows (a thousand,
// before: each holds its messages and a goroutine, which maxInFlightBytes does not see
// all of).
func TestWaitingDeliveriesAreBounded(t *testing.T) {
	w := &concWriter{hold: 200 * time.Millisecond}
	b := NewBase(textDecoder{}, w, 1000, 100*time.Millisecond, newMetrics(), quiet())
	var now, most atomic.Int64
	p := NewParallel(processorFunc(func(ctx context.Context, d *Delivery) error {
		c := now.Add(1)
		defer now.Add(-1)
		for m := most.Load(); c > m && !most.CompareAndSwap(m, c); m = most.Load() {
		}
		return b.Process(ctx, d)
	}), 2, 64<<20, func(*Delivery, error) {})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	var loops sync.WaitGroup
	for range 64 {
		loops.Go(func() {
			fp := newFakePartition()
			for ctx.Err() == nil {
				r, err := p.Reserve(ctx, fp.Revoked())
				if err != nil {
					return
				}
				if r.Start(ctx, delivery(fp, "s")) != nil {
					return
				}
			}
		})
	}
	loops.Wait()
	cancel()
	p.Close()
	// A joint write sent from each slot, and one waiting for more, each of jointParts at
	// most, and a delivery being formed in each slot.
	if bound := int64((2+1)*jointParts + 2); most.Load() > bound {
		t.Errorf("parallelism 2: %d deliveries in flight at once, more than %d", most.Load(), bound)
	}
}
