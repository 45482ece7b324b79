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

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/failure"
	"github.com/spanflow/spanflow/ingester/otlpwire"
)

func inFlightSlots(p *Parallel) (inFlight, reserved int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inFlight, p.reserved, p.bytes
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// flakyWriter fails until up is set, and counts writes at once.
type flakyWriter struct {
	up     atomic.Bool
	writes atomic.Int64
	spans  atomic.Int64
}

func (f *flakyWriter) Write(ctx context.Context, req otlpwire.Request) error {
	f.writes.Add(1)
	if !f.up.Load() {
		return errors.New("connection refused")
	}
	time.Sleep(2 * time.Millisecond)
	f.spans.Add(int64(req.Spans))
	return nil
}

// TestJointWritesKeepFlowingUnderAByteBound: loops of 8 partitions, as the consumer's
// (Reserve, form, Start), feed small deliveries through retry and base under a byte bound
// that a few parked deliveries fill, with the backend up, and down for a while: every
// delivery is written. A delivery that waited for a slot behind one waiting for the bytes
// of parked deliveries froze the pod, for good after storage came back.
func TestJointWritesKeepFlowingUnderAByteBound(t *testing.T) {
	for _, outage := range []time.Duration{0, 300 * time.Millisecond} {
		t.Run(fmt.Sprint("outage ", outage), func(t *testing.T) { feedLoops(t, outage, 60) })
	}
}

func feedLoops(t *testing.T, outage time.Duration, maxBytes int64) {
	w := &flakyWriter{}
	w.up.Store(outage == 0)
	b := NewBase(textDecoder{}, w, 100, 20*time.Millisecond, newMetrics(), quiet())
	r := NewRetry(b, Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}, nil)
	var finished atomic.Int64
	p := NewParallel(processorFunc(func(ctx context.Context, d *Delivery) error {
		err := r.Process(ctx, d)
		if err == nil {
			finished.Add(1)
		}
		return err
	}), 2, maxBytes, func(*Delivery, error) {})
	ctx, cancel := context.WithCancel(context.Background())
	const partitions, each = 8, 20
	loops := make(chan struct{}, partitions)
	for range partitions {
		go func() {
			defer func() { loops <- struct{}{} }()
			fp := newFakePartition()
			for range each {
				res, err := p.Reserve(ctx, fp.Revoked())
				if err != nil {
					return
				}
				if res.Start(ctx, delivery(fp, "abc", "def")) != nil {
					return
				}
			}
		}()
	}
	time.Sleep(outage)
	w.up.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for finished.Load() < partitions*each && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	n, res, by := inFlightSlots(p)
	if got := finished.Load(); got < partitions*each {
		t.Errorf("5s after the backend came back: %d of %d deliveries written (%d writes); inFlight %d reserved %d bytes %d",
			got, partitions*each, w.writes.Load(), n, res, by)
	}
	cancel()
	for range partitions {
		<-loops
	}
	p.Close()
}

type processorFunc func(ctx context.Context, d *Delivery) error

func (f processorFunc) Process(ctx context.Context, d *Delivery) error { return f(ctx, d) }

// gateWriter records each request's size and blocks until release is closed.
type gateWriter struct {
	started chan struct{}
	release chan struct{}
	ctxErr  atomic.Value
	once    sync.Once
	maxLen  atomic.Int64
	writes  atomic.Int64
}

func (w *gateWriter) Write(ctx context.Context, req otlpwire.Request) error {
	w.writes.Add(1)
	if n := int64(req.Len()); n > w.maxLen.Load() {
		w.maxLen.Store(n)
	}
	if w.started != nil {
		w.once.Do(func() { close(w.started) })
	}
	if w.release != nil {
		select {
		case <-w.release:
		case <-ctx.Done():
			w.ctxErr.Store(ctx.Err())
			return ctx.Err()
		}
	}
	return nil
}

// TestAFollowerWaitsForTheWriteItIsIn: a delivery whose context ends while the joint write
// holding its request is sent does not return until the write is over: its batch is reset
// and pooled then, and the request's pieces are views of it.
func TestAFollowerWaitsForTheWriteItIsIn(t *testing.T) {
	w := &gateWriter{started: make(chan struct{}), release: make(chan struct{})}
	b := NewBase(textDecoder{}, w, 100, 50*time.Millisecond, newMetrics(), quiet()).(*base)
	results := make(chan error, 2)
	go func() { results <- b.Process(context.Background(), delivery(newFakePartition(), "a")) }()
	waitFor(t, "a leader", func() bool { b.writes.mu.Lock(); defer b.writes.mu.Unlock(); return b.writes.open != nil })
	ctx, stop := context.WithCancel(context.Background())
	go func() { results <- b.Process(ctx, delivery(newFakePartition(), "b")) }()
	<-w.started
	stop()
	select {
	case err := <-results:
		t.Fatalf("a delivery returned (%v) while the write holding its bytes was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(w.release)
	<-results
	<-results
}

// TestALeaderStoppingDoesNotCancelTheOthersWrite: the context of the delivery that sends a
// joint write ending does not cancel the write that others wait on.
func TestALeaderStoppingDoesNotCancelTheOthersWrite(t *testing.T) {
	w := &gateWriter{started: make(chan struct{}), release: make(chan struct{})}
	b := NewBase(textDecoder{}, w, 100, 50*time.Millisecond, newMetrics(), quiet()).(*base)
	lctx, stopLeader := context.WithCancel(context.Background())
	results := make(chan error, 2)
	go func() { results <- b.Process(lctx, delivery(newFakePartition(), "a")) }()
	waitFor(t, "a leader", func() bool { b.writes.mu.Lock(); defer b.writes.mu.Unlock(); return b.writes.open != nil })
	follower := delivery(newFakePartition(), "b")
	go func() { results <- b.Process(context.Background(), follower) }()
	<-w.started
	stopLeader()
	time.Sleep(50 * time.Millisecond)
	close(w.release)
	<-results
	<-results
	if err := w.ctxErr.Load(); err != nil || follower.Count(Written) != 1 {
		t.Errorf("the joint write was cancelled (%v) with the leader; follower %v", err, verdicts(follower))
	}
}

// TestAFailedJointWriteIsOneError: a joint request of three deliveries that fails is one
// request and one write error, not three.
func TestAFailedJointWriteIsOneError(t *testing.T) {
	w := &scriptedWriter{fail: func([]string) error { return errors.New("connection refused") }}
	m := newMetrics()
	p := NewParallel(NewBase(textDecoder{}, w, 100, 100*time.Millisecond, m, quiet()), 2, 0, func(*Delivery, error) {})
	for _, v := range []string{"a", "b", "c"} {
		if err := p.Process(context.Background(), delivery(newFakePartition(), v)); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	if requests, errs := testutil.ToFloat64(m.WriteRequests), testutil.ToFloat64(m.WriteErrors); requests != 1 || errs != 1 {
		t.Errorf("%v requests and %v write errors, want one of each", requests, errs)
	}
}

// bigDecoder decodes a message into one span carrying the value as an attribute.
type bigDecoder struct{}

func (bigDecoder) Decode(b *otlpwire.Batch, data []byte) (int, error) {
	td := ptrace.NewTraces()
	s := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.Attributes().PutStr("blob", string(data))
	req := otlpwire.RequestOf(td)
	b.AppendRequest(req.Pieces[0], req.Spans)
	return req.Spans, nil
}

// TestAJointWriteStaysUnderFourMiB: a request that would take a joint write past 2 MiB
// goes into the next one: two requests that each fit (a delivery is cut once past 2 MiB,
// so may hold more) made a request over the 4 MiB gRPC receivers take by default.
func TestAJointWriteStaysUnderFourMiB(t *testing.T) {
	w := &gateWriter{}
	p := NewParallel(NewBase(bigDecoder{}, w, 1000, time.Second, newMetrics(), quiet()), 2, 0, func(*Delivery, error) {})
	blob := func(n int) string { return string(make([]byte, n)) }
	// 2 MiB less a little, then a delivery of 2 MiB and one message more.
	for _, d := range []*Delivery{
		delivery(newFakePartition(), blob(1<<20), blob(1<<20-4096)),
		delivery(newFakePartition(), blob(1<<20), blob(1<<20), blob(300<<10)),
	} {
		if err := p.Process(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	if got := w.maxLen.Load(); got > 4<<20 {
		t.Errorf("a joint request of %d bytes (%.2f MiB) in %d writes: over the 4 MiB a gRPC receiver takes by default", got, float64(got)/(1<<20), w.writes.Load())
	}
}

// TestARefusedMessageRetriedGoesAlone: a message storage refused for good, without a
// dead-letter topic, is tried again with backoff; it goes alone, rather than join joint
// writes that storage would refuse for it, each of their deliveries then sent again.
func TestARefusedMessageRetriedGoesAlone(t *testing.T) {
	var poisoned, alone atomic.Int64
	w := &scriptedWriter{fail: func(names []string) error {
		if slices.Contains(names, "x") {
			if len(names) > 1 {
				poisoned.Add(1)
			}
			return failure.Permanent(errors.New("invalid span x"))
		}
		if len(names) == 1 {
			alone.Add(1)
		}
		return nil
	}}
	m := newMetrics()
	chain := NewCommitting(NewFailurePolicy(NewRetry(NewBase(textDecoder{}, w, 100, 20*time.Millisecond, m, quiet()),
		Backoff{Min: time.Millisecond, Max: time.Millisecond, Attempts: 1}, nil),
		Policy{Backoff: Backoff{Min: 10 * time.Millisecond, Max: 10 * time.Millisecond}}, m, PolicyLogs{DeadLettered: quiet(), Skipped: quiet()}))
	p := NewParallel(chain, 4, 0, func(*Delivery, error) {})
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Process(ctx, delivery(newFakePartition(), "x")); err != nil {
		t.Fatal(err)
	}
	const others = 100
	for i := range others {
		if err := p.Process(ctx, delivery(newFakePartition(), fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	p.Close()
	if poisoned.Load() > 1 {
		t.Errorf("x's retries refused %d joint writes; %d of %d deliveries needed a second request", poisoned.Load(), alone.Load(), others)
	}
}

// TestADeliveryBackingOffHoldsItsSlot: deliveries whose joint write failed hold a slot
// again through their retry's backoff, as a delivery that failed alone does: while
// storage is down, no more deliveries are formed than the parallelism allows.
func TestADeliveryBackingOffHoldsItsSlot(t *testing.T) {
	w := &scriptedWriter{fail: func([]string) error { return errors.New("connection refused") }}
	chain := NewRetry(NewBase(textDecoder{}, w, 100, 100*time.Millisecond, newMetrics(), quiet()), Backoff{Min: time.Hour, Max: time.Hour}, nil)
	p := NewParallel(chain, 2, 0, func(*Delivery, error) {})
	ctx, cancel := context.WithCancel(context.Background())
	for _, v := range []string{"a", "b", "c"} {
		if err := p.Process(ctx, delivery(newFakePartition(), v)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the joint write to fail", func() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.writes == 1 })
	waitFor(t, "the three deliveries to hold slots", func() bool { n, _, _ := inFlightSlots(p); return n == 3 })
	cancel()
	p.Close()
}
