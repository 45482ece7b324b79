package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spanflow/spanflow/ingester/eventlog"
	"github.com/spanflow/spanflow/ingester/failure"
)

// jointChain is base behind Parallel with two slots, joining requests of under half of
// spans spans for up to linger; what Parallel could not finish goes to unfinished.
type jointChain struct {
	*Parallel
	mu         sync.Mutex
	unfinished map[*Delivery]error
}

func newJointChain(t *testing.T, w Writer, spans int, linger time.Duration) *jointChain {
	t.Helper()
	c := &jointChain{unfinished: map[*Delivery]error{}}
	base := NewBase(textDecoder{}, w, spans, linger, newMetrics(), quiet())
	c.Parallel = NewParallel(NewCommitting(base), 2, 0, func(d *Delivery, err error) {
		c.mu.Lock()
		c.unfinished[d] = err
		c.mu.Unlock()
	})
	return c
}

// run hands the deliveries over one by one and waits for all of them.
func (c *jointChain) run(t *testing.T, ds ...*Delivery) {
	t.Helper()
	for _, d := range ds {
		if err := c.Process(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
}

// TestSmallDeliveriesShareAWrite: deliveries of a few spans each, of ten partitions, are
// written in one request, though only two deliveries may be in flight: the first keeps
// its slot to send the joint write, the others give theirs back while they wait to be
// joined. Every span is written once and every delivery done.
func TestSmallDeliveriesShareAWrite(t *testing.T) {
	w := &scriptedWriter{}
	c := newJointChain(t, w, 200, 500*time.Millisecond)
	var ds []*Delivery
	var parts []*fakePartition
	var want []string
	for i := range 10 {
		p := newFakePartition()
		parts = append(parts, p)
		a, b := fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)
		ds = append(ds, delivery(p, a, b))
		want = append(want, a, b)
	}
	c.run(t, ds...)
	if got := w.storedNames(); !slices.Equal(got, slices.Sorted(slices.Values(want))) || w.writes != 1 {
		t.Errorf("stored %v in %d writes, want the 20 spans in one", got, w.writes)
	}
	for i, p := range parts {
		if len(p.done) != 1 || ds[i].Count(Written) != 2 {
			t.Errorf("delivery %d: done %v, verdicts %v", i, p.done, verdicts(ds[i]))
		}
	}
}

// TestRequestsOfATenthOfTheBatchGoAlone: a request of at least a tenth of the batch size
// is written at once, by itself: under a backlog nothing waits to be joined.
func TestRequestsOfATenthOfTheBatchGoAlone(t *testing.T) {
	w := &scriptedWriter{}
	c := newJointChain(t, w, 20, time.Minute)
	c.run(t, delivery(newFakePartition(), "a", "b"), delivery(newFakePartition(), "c,d"), delivery(newFakePartition(), "e", "f", "g"))
	if len(w.storedNames()) != 7 || w.writes != 3 {
		t.Errorf("stored %v in %d writes, want 7 spans in 3", w.storedNames(), w.writes)
	}
}

// TestAJointWriteRefusedIsWrittenDeliveryByDelivery: storage refuses for good a joint
// write holding a bad span; each delivery's request is then written alone, so that only
// the bad message is refused, in its own delivery, and the others' are written.
func TestAJointWriteRefusedIsWrittenDeliveryByDelivery(t *testing.T) {
	w := &scriptedWriter{fail: func(names []string) error {
		if slices.Contains(names, "x") {
			return failure.Permanent(errors.New("invalid span x"))
		}
		return nil
	}}
	c := newJointChain(t, w, 100, 200*time.Millisecond)
	d1, d2, d3 := delivery(newFakePartition(), "a", "b"), delivery(newFakePartition(), "x", "c"), delivery(newFakePartition(), "d")
	c.run(t, d1, d2, d3)
	if !slices.Equal(verdicts(d1), []Verdict{Written, Written}) || !slices.Equal(verdicts(d2), []Verdict{Refused, Written}) ||
		!slices.Equal(verdicts(d3), []Verdict{Written}) {
		t.Errorf("verdicts %v %v %v, want only x refused", verdicts(d1), verdicts(d2), verdicts(d3))
	}
	if got := w.storedNames(); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Errorf("stored %v, want a b c d", got)
	}
}

// TestAJointWriteFailingLeavesEveryDeliveryUnfinished: a backend that is down fails the
// joint write: every delivery in it is unfinished (read again, never done), and none is
// written alone meanwhile.
func TestAJointWriteFailingLeavesEveryDeliveryUnfinished(t *testing.T) {
	down := errors.New("connection refused")
	w := &scriptedWriter{fail: func([]string) error { return down }}
	c := newJointChain(t, w, 100, 200*time.Millisecond)
	parts := []*fakePartition{newFakePartition(), newFakePartition(), newFakePartition()}
	c.run(t, delivery(parts[0], "a"), delivery(parts[1], "b"), delivery(parts[2], "c"))
	if len(c.unfinished) != 3 || w.writes != 1 {
		t.Errorf("%d deliveries unfinished after %d writes, want 3 after 1", len(c.unfinished), w.writes)
	}
	for d, err := range c.unfinished {
		if !errors.Is(err, down) || d.Count(Pending) != 1 {
			t.Errorf("delivery %v: %v, verdicts %v", d.Messages[0].Value, err, verdicts(d))
		}
	}
	for _, p := range parts {
		if len(p.done) != 0 {
			t.Errorf("a delivery of a failed write is done: %v", p.done)
		}
	}
}

// TestAJointPartialSuccessIsCountedOnce: spans a backend rejects in a partial success of
// a joint write are counted once, and every delivery in it is written.
func TestAJointPartialSuccessIsCountedOnce(t *testing.T) {
	w := &scriptedWriter{fail: func([]string) error { return &failure.Rejected{Spans: 2, Message: "too old"} }}
	m := newMetrics()
	var logged []string
	rejected := eventlog.Info(funcr.New(func(_, args string) { logged = append(logged, args) }, funcr.Options{}), "partial success", time.Hour)
	p := NewParallel(NewBase(textDecoder{}, w, 100, 200*time.Millisecond, m, rejected), 2, 0, func(*Delivery, error) {})
	ds := []*Delivery{delivery(newFakePartition(), "a"), delivery(newFakePartition(), "b"), delivery(newFakePartition(), "c")}
	for _, d := range ds {
		if err := p.Process(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	if got := testutil.ToFloat64(m.RejectedSpans); got != 2 || w.writes != 1 || testutil.ToFloat64(m.WriteRequests) != 1 {
		t.Errorf("rejected spans counted %v, %d writes, want 2 in 1", got, w.writes)
	}
	for _, d := range ds {
		if d.Count(Written) != 1 {
			t.Errorf("delivery %s: %v", d.Messages[0].Value, verdicts(d))
		}
	}
	// Logged once, as the write's: of its three deliveries and three spans.
	if len(logged) != 1 || !strings.Contains(logged[0], `"rejectedSpans"=2`) || !strings.Contains(logged[0], `"writeDeliveries"=3 "writeSpans"=3`) {
		t.Errorf("logged %q, want one line naming the write's 3 deliveries and 3 spans", logged)
	}
}

// TestADeliveryThatStopsWaitingLeavesTheJointWrite: a delivery whose context ends (its
// partition revoked, a stop) before the joint write is sent is taken out of it: it is
// unfinished, and its spans are not sent.
func TestADeliveryThatStopsWaitingLeavesTheJointWrite(t *testing.T) {
	w := &scriptedWriter{}
	b := NewBase(textDecoder{}, w, 100, 300*time.Millisecond, newMetrics(), quiet()).(*base)
	first, second := delivery(newFakePartition(), "a"), delivery(newFakePartition(), "b")
	ctx, stop := context.WithCancel(context.Background())
	results := make(chan error, 2)
	go func() { results <- b.Process(context.Background(), first) }()
	waitForParts := func(n int) {
		for {
			b.writes.mu.Lock()
			joined := b.writes.open != nil && len(b.writes.open.parts) == n
			b.writes.mu.Unlock()
			if joined {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitForParts(1)
	go func() { results <- b.Process(ctx, second) }()
	waitForParts(2)
	stop()
	errs := []error{<-results, <-results}
	if !slices.ContainsFunc(errs, func(err error) bool { return errors.Is(err, context.Canceled) }) || !slices.Contains(errs, nil) {
		t.Errorf("results %v, want one written and one canceled", errs)
	}
	if got := w.storedNames(); !slices.Equal(got, []string{"a"}) || second.Count(Pending) != 1 || w.miscounted > 0 {
		t.Errorf("stored %v (%d requests miscounted), the stopped delivery %v; want only a", got, w.miscounted, verdicts(second))
	}
}

// TestWithOneSlotEachRequestGoesAlone: with a parallelism of 1 no other delivery could be
// formed while one waited to be joined: each request is sent at once, by itself.
func TestWithOneSlotEachRequestGoesAlone(t *testing.T) {
	w := &scriptedWriter{}
	p := NewParallel(NewBase(textDecoder{}, w, 100, time.Hour, newMetrics(), quiet()), 1, 0, func(*Delivery, error) {})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, v := range []string{"a", "b", "c"} {
			if err := p.Process(context.Background(), delivery(newFakePartition(), v)); err != nil {
				t.Error(err)
			}
		}
		p.Close()
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("a delivery waits to be joined where nothing can join it")
	}
	if w.writes != 3 || len(w.storedNames()) != 3 {
		t.Errorf("stored %v in %d writes, want 3 alone", w.storedNames(), w.writes)
	}
}

// TestDeliveriesShortOfTheirPartitionsEndGoAlone: a small delivery of a backlog (cut where
// a response ended, or while others waited for a slot) is written at once, by itself:
// only deliveries at their partitions' ends wait to be joined.
func TestDeliveriesShortOfTheirPartitionsEndGoAlone(t *testing.T) {
	w := &scriptedWriter{}
	c := newJointChain(t, w, 100, time.Minute)
	var ds []*Delivery
	for _, v := range []string{"a", "b", "c"} {
		d := delivery(newFakePartition(), v)
		d.Tail = false
		ds = append(ds, d)
	}
	c.run(t, ds...)
	if w.writes != 3 {
		t.Errorf("%d writes, want 3 alone", w.writes)
	}
}
