package offset

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestTrackerContiguous(t *testing.T) {
	cases := []struct {
		name  string
		start int64
		begin []int64
		done  []int64
		want  int64
	}{
		{"nothing finished", 10, []int64{10, 11, 12}, nil, 10},
		{"in order", 10, []int64{10, 11, 12}, []int64{10, 11}, 12},
		{"all", 10, []int64{10, 11, 12}, []int64{10, 11, 12}, 13},
		{"a gap blocks", 10, []int64{10, 11, 12}, []int64{11, 12}, 10},
		{"gap filled last", 10, []int64{10, 11, 12}, []int64{12, 11, 10}, 13},
		{"out of order middle", 0, []int64{0, 1, 2, 3, 4}, []int64{0, 3, 1}, 2},
		{"holes in offsets (compaction)", 100, []int64{100, 105, 106, 200}, []int64{105, 100}, 106},
		{"holes, all done", 100, []int64{100, 105, 106, 200}, []int64{200, 106, 105, 100}, 201},
		{"unknown start", -1, []int64{7, 8}, nil, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker(tc.start)
			for _, o := range tc.begin {
				tr.Begin(o, o)
			}
			for _, o := range tc.done {
				if !tr.Done(o) {
					t.Fatalf("Done(%d) refused", o)
				}
			}
			if got := tr.Committable(); got != tc.want {
				t.Errorf("Committable() = %d, want %d", got, tc.want)
			}
			if got, want := tr.InFlight(), len(tc.begin)-len(tc.done); got != want {
				t.Errorf("InFlight() = %d, want %d", got, want)
			}
		})
	}
}

func TestTrackerRefusesUnknownAndRepeated(t *testing.T) {
	tr := NewTracker(0)
	tr.Begin(0, 0)
	tr.Begin(1, 1)
	if tr.Done(5) {
		t.Error("Done of an offset never begun")
	}
	if !tr.Done(1) || tr.Done(1) {
		t.Error("Done twice of the same offset")
	}
	if !tr.Done(0) || tr.Done(0) {
		t.Error("Done of an already committed-past offset")
	}
	if tr.Committable() != 2 {
		t.Errorf("Committable() = %d", tr.Committable())
	}
}

// TestTrackerConcurrentRandomOrder finishes messages from many goroutines in random order
// and checks the committable offset never passes an unfinished one.
func TestTrackerConcurrentRandomOrder(t *testing.T) {
	const n = 5000
	tr := NewTracker(0)
	for o := range int64(n) {
		tr.Begin(o, o)
	}
	order := rand.Perm(n)
	var finished sync.Map
	var wg sync.WaitGroup
	stop := make(chan struct{})
	// A watcher checks the invariant while work goes on.
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c := tr.Committable()
			for o := range c {
				if _, ok := finished.Load(o); !ok {
					t.Errorf("committable %d passes unfinished offset %d", c, o)
					return
				}
			}
		}
	}()
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				o := int64(order[i])
				finished.Store(o, true)
				tr.Done(o)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-watcherDone
	if tr.Committable() != n || tr.InFlight() != 0 {
		t.Errorf("after all: committable %d in flight %d", tr.Committable(), tr.InFlight())
	}
}

func TestTrackerWait(t *testing.T) {
	tr := NewTracker(0)
	if err := tr.Wait(context.Background()); err != nil {
		t.Fatalf("empty tracker: %v", err)
	}
	tr.Begin(0, 0)
	tr.Begin(1, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := tr.Wait(ctx); err == nil {
		t.Fatal("Wait returned with messages in flight")
	}
	done := make(chan error, 1)
	go func() { done <- tr.Wait(context.Background()) }()
	tr.Done(1)
	tr.Done(0)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after the last message finished")
	}
}

// TestAbandon: a message begun but never handed over is forgotten: the drain does not
// wait for it and the committable offset stays before it.
func TestAbandon(t *testing.T) {
	tr := NewTracker(9)
	tr.Begin(10, 10)
	tr.Begin(11, 11)
	tr.Abandon(10) // not the last one begun: ignored
	tr.Abandon(11)
	if tr.InFlight() != 1 {
		t.Fatalf("in flight %d, want 1", tr.InFlight())
	}
	tr.Done(10)
	if got := tr.Committable(); got != 11 {
		t.Errorf("committable %d, want 11 (offset 11 is read again)", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := tr.Wait(ctx); err != nil {
		t.Errorf("the drain waits for an abandoned message: %v", err)
	}
	tr.Begin(12, 12)
	tr.Abandon(12)
	if err := tr.Wait(ctx); err != nil {
		t.Errorf("the drain waits after abandoning the only message: %v", err)
	}
}

// TestTrackerRanges: deliveries of several messages commit up to their last offset, never
// past an unfinished one before them.
func TestTrackerRanges(t *testing.T) {
	tr := NewTracker(0)
	tr.Begin(0, 99)
	tr.Begin(100, 149)
	tr.Begin(150, 400) // holes inside a delivery (compaction) are covered by it
	if !tr.Done(100) || tr.Committable() != 0 {
		t.Fatalf("after the second delivery: committable %d, want 0", tr.Committable())
	}
	if !tr.Done(0) || tr.Committable() != 150 {
		t.Fatalf("after the first: committable %d, want 150", tr.Committable())
	}
	if tr.InFlight() != 1 {
		t.Errorf("InFlight() = %d deliveries, want 1", tr.InFlight())
	}
	if tr.Done(120) {
		t.Error("Done of an offset inside a delivery, not its first")
	}
	if !tr.Done(150) || tr.Committable() != 401 {
		t.Errorf("after all: committable %d, want 401", tr.Committable())
	}
}

// TestTrackerPassesWhatHoldsNoMessage: offsets with no message after the deliveries begun
// (a transaction's marker at the log's end, records deleted, a start read from nothing)
// become committable once the deliveries before them are finished, never before.
func TestTrackerPassesWhatHoldsNoMessage(t *testing.T) {
	tr := NewTracker(-1)
	tr.Pass(40) // started at 40 (latest, or the log start): nothing before it to read
	if got := tr.Committable(); got != 40 {
		t.Fatalf("passed to 40 with nothing in flight: committable %d", got)
	}
	tr.Begin(40, 49)
	tr.Begin(50, 52)
	tr.Pass(54) // offset 53: the commit marker after 50 to 52
	tr.Pass(54) // an empty fetch at the end again
	tr.Pass(30) // never back
	if !tr.Done(50) || tr.Committable() != 40 {
		t.Fatalf("the delivery at 40 unfinished: committable %d, want 40", tr.Committable())
	}
	if got := tr.InFlight(); got != 1 {
		t.Errorf("InFlight() = %d, want 1: what was passed is not waited for", got)
	}
	if !tr.Done(40) || tr.Committable() != 54 {
		t.Errorf("every delivery finished: committable %d, want 54, past the marker", tr.Committable())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := tr.Wait(ctx); err != nil {
		t.Errorf("Wait with only what was passed left: %v", err)
	}
	tr.Begin(54, 60)
	if !tr.Done(54) || tr.Committable() != 61 {
		t.Errorf("a delivery after the marker: committable %d, want 61", tr.Committable())
	}
}
