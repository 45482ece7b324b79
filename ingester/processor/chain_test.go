package processor

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/metrics"
)

// fakePartition records what the chain tells the partition.
type fakePartition struct {
	mu      sync.Mutex
	done    []int64
	paused  []error
	resume  int
	revoked chan struct{}
}

func (p *fakePartition) Done(o int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = append(p.done, o)
	return true
}
func (p *fakePartition) Pause(err error) {
	p.mu.Lock()
	p.paused = append(p.paused, err)
	p.mu.Unlock()
}
func (p *fakePartition) Resume() { p.mu.Lock(); p.resume++; p.mu.Unlock() }

// Revoked is nil unless the test set revoked: a partition never revoked.
func (p *fakePartition) Revoked() <-chan struct{} { return p.revoked }

func TestCommittingMarksOnlySuccess(t *testing.T) {
	part := &fakePartition{}
	ctx := WithPartition(context.Background(), part)
	fail := errors.New("write failed")
	c := NewCommitting(Func(func(_ context.Context, msg kafka.Message) error {
		if msg.Offset == 2 {
			return fail
		}
		return nil
	}))
	for o := range int64(4) {
		err := c.Process(ctx, kafka.Message{Offset: o})
		if (o == 2) != errors.Is(err, fail) {
			t.Errorf("offset %d: err %v", o, err)
		}
	}
	if got := part.done; len(got) != 3 || got[0] != 0 || got[1] != 1 || got[2] != 3 {
		t.Errorf("marked %v, want [0 1 3]", got)
	}
}

func TestParallelBoundsAndErrors(t *testing.T) {
	const workers = 3
	var running, peak atomic.Int32
	release := make(chan struct{})
	var errs sync.Map
	p := NewParallel(Func(func(_ context.Context, msg kafka.Message) error {
		n := running.Add(1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		if msg.Offset%2 == 1 {
			return errors.New("odd")
		}
		return nil
	}), workers, 0, func(msg kafka.Message, err error) { errs.Store(msg.Offset, err) })

	handed := make(chan struct{})
	go func() {
		for o := range int64(10) {
			if err := p.Process(context.Background(), kafka.Message{Offset: o}); err != nil {
				t.Error(err)
			}
		}
		close(handed)
	}()
	// With every worker blocked, the hand-over of the 4th+ messages waits.
	waitUntil(t, func() bool { return running.Load() == workers })
	select {
	case <-handed:
		t.Fatal("all messages were handed over while every worker was busy")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-handed
	p.Close()
	if peak.Load() > workers {
		t.Errorf("%d messages ran at once, bound is %d", peak.Load(), workers)
	}
	for o := range int64(10) {
		_, failed := errs.Load(o)
		if failed != (o%2 == 1) {
			t.Errorf("offset %d: error reported %v", o, failed)
		}
	}
}

// blockedPool is a Parallel whose workers hold every message until release is closed;
// running counts the messages they hold.
func blockedPool(workers int, maxBytes int64) (p *Parallel, release chan struct{}, running *atomic.Int32) {
	release, running = make(chan struct{}), new(atomic.Int32)
	p = NewParallel(Func(func(context.Context, kafka.Message) error {
		running.Add(1)
		<-release
		return nil
	}), workers, maxBytes, func(kafka.Message, error) {})
	return p, release, running
}

func TestParallelByteBudget(t *testing.T) {
	p, release, running := blockedPool(10, 100)
	defer p.Close()
	ctx := context.Background()
	// 60 + 40 fit in 100 bytes; a third message of 10 must wait.
	for _, n := range []int{60, 40} {
		if err := p.Process(ctx, kafka.Message{Value: make([]byte, n)}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, func() bool { return running.Load() == 2 })
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := p.Process(short, kafka.Message{Value: make([]byte, 10)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a message over the byte budget was handed over: %v", err)
	}
	close(release)
	// A single message larger than the whole budget still goes through once alone.
	if err := p.Process(ctx, kafka.Message{Value: make([]byte, 500)}); err != nil {
		t.Errorf("an oversized message is blocked forever: %v", err)
	}
}

// TestParallelGivesUpTheHandOverOnRevoke: with every worker (or the byte budget) taken,
// a message of a partition that is revoked meanwhile is not handed over: Process returns
// ErrRevoked at once instead of holding up the rebalance until a worker frees up.
func TestParallelGivesUpTheHandOverOnRevoke(t *testing.T) {
	p, release, running := blockedPool(1, 100)
	defer p.Close()
	defer close(release)
	for _, size := range []int{10, 100} { // waits for the worker; waits for the bytes
		part := &fakePartition{revoked: make(chan struct{})}
		ctx := WithPartition(context.Background(), part)
		if size == 10 {
			if err := p.Process(ctx, kafka.Message{Value: make([]byte, 10)}); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, func() bool { return running.Load() == 1 })
		}
		result := make(chan error, 1)
		go func() { result <- p.Process(ctx, kafka.Message{Value: make([]byte, size)}) }()
		select {
		case err := <-result:
			t.Fatalf("handed over to a busy pool: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		close(part.revoked)
		select {
		case err := <-result:
			if !errors.Is(err, ErrRevoked) {
				t.Errorf("after the revoke: %v, want ErrRevoked", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the hand-over still waits after the partition was revoked")
		}
	}
}

// recordingWriter counts writes and spans, optionally failing.
type recordingWriter struct {
	mu     sync.Mutex
	writes []int
	err    error
}

func (w *recordingWriter) Write(_ context.Context, td ptrace.Traces) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.writes = append(w.writes, td.SpanCount())
	return nil
}

func traces(spans int) ptrace.Traces {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	for range spans {
		ss.Spans().AppendEmpty()
	}
	return td
}

func TestBatcher(t *testing.T) {
	cases := []struct {
		name       string
		maxSpans   int
		maxWaiting int
		calls      int
		spansEach  int
		wantWrites []int
	}{
		{"fills by spans", 6, 100, 4, 3, []int{6, 6}},
		{"fills by waiting callers", 1000, 2, 4, 1, []int{2, 2}},
		{"lingers for a partial batch", 1000, 100, 3, 2, []int{6}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := &recordingWriter{}
			b := NewBatcher(context.Background(), w, tc.maxSpans, tc.maxWaiting, 30*time.Millisecond)
			var wg sync.WaitGroup
			for range tc.calls {
				wg.Go(func() {
					if err := b.Write(context.Background(), traces(tc.spansEach)); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			total := 0
			for _, n := range w.writes {
				total += n
			}
			if total != tc.calls*tc.spansEach || len(w.writes) != len(tc.wantWrites) {
				t.Errorf("writes %v, want %v", w.writes, tc.wantWrites)
			}
		})
	}
}

func TestBatcherReportsWriteErrorToEveryCaller(t *testing.T) {
	w := &recordingWriter{err: errors.New("backend down")}
	b := NewBatcher(context.Background(), w, 1000, 3, time.Second)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 3 {
		wg.Go(func() {
			if b.Write(context.Background(), traces(1)) != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 3 {
		t.Errorf("%d of 3 callers saw the failed write", failed.Load())
	}
}

type fakeDeadLetter struct {
	mu   sync.Mutex
	msgs []int64
	err  error
}

func (d *fakeDeadLetter) DeadLetter(_ context.Context, msg kafka.Message, _ error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return d.err
	}
	d.msgs = append(d.msgs, msg.Offset)
	return nil
}

func TestFailurePolicy(t *testing.T) {
	decodeErr := DecodeFailure(errors.New("not protobuf"))
	writeErr := errors.New("storage down")
	refused := Permanent(errors.New("400 Bad Request"))
	cases := []struct {
		name          string
		onDecodeError string
		deadLetter    bool
		err           error // what next returns the first time; then it succeeds
		wantDead      int
		wantPaused    bool
		wantSkipped   float64
		wantNextCalls int
	}{
		{"decode error skipped", config.OnDecodeErrorSkip, false, decodeErr, 0, false, 1, 1},
		{"decode error dead-lettered", config.OnDecodeErrorDeadletter, true, decodeErr, 1, false, 0, 1},
		{"decode error fails: pause", config.OnDecodeErrorFail, true, decodeErr, 0, true, 0, 2},
		{"write error dead-lettered", config.OnDecodeErrorFail, true, writeErr, 1, false, 0, 1},
		{"write error without DLQ: pause", config.OnDecodeErrorFail, false, writeErr, 0, true, 0, 2},
		{"success", config.OnDecodeErrorFail, false, nil, 0, false, 0, 1},
		{"refused write is never skipped", config.OnDecodeErrorSkip, false, refused, 0, true, 0, 2},
		{"refused write dead-lettered", config.OnDecodeErrorSkip, true, refused, 1, false, 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			next := Func(func(context.Context, kafka.Message) error {
				calls++
				if calls == 1 {
					return tc.err
				}
				return nil
			})
			m := metrics.New(prometheus.NewRegistry())
			dl := &fakeDeadLetter{}
			policy := Policy{OnDecodeError: tc.onDecodeError}
			if tc.deadLetter {
				policy.DeadLetter = dl
			}
			f := NewFailurePolicy(next, policy, m, logr.Discard()).(*failurePolicy)
			f.wait = func(context.Context, int) error { return nil }
			part := &fakePartition{}
			if err := f.Process(WithPartition(context.Background(), part), kafka.Message{Offset: 7}); err != nil {
				t.Fatalf("Process: %v", err)
			}
			if len(dl.msgs) != tc.wantDead || (len(part.paused) > 0) != tc.wantPaused || calls != tc.wantNextCalls {
				t.Errorf("dead-lettered %v, paused %v, next called %d times", dl.msgs, part.paused, calls)
			}
			if tc.wantPaused && part.resume != 1 {
				t.Errorf("paused but resumed %d times", part.resume)
			}
			if got := testutil.ToFloat64(m.Skipped); got != tc.wantSkipped {
				t.Errorf("skipped metric %v", got)
			}
		})
	}
}

func TestFailurePolicyKeepsTryingWhenDeadLetteringFails(t *testing.T) {
	dl := &fakeDeadLetter{err: errors.New("dlq down")}
	m := metrics.New(prometheus.NewRegistry())
	f := NewFailurePolicy(Func(func(context.Context, kafka.Message) error { return errors.New("storage down") }),
		Policy{OnDecodeError: config.OnDecodeErrorFail, DeadLetter: dl}, m, logr.Discard()).(*failurePolicy)
	waits := 0
	f.wait = func(context.Context, int) error {
		waits++
		if waits == 3 {
			dl.mu.Lock()
			dl.err = nil // the dead-letter topic comes back
			dl.mu.Unlock()
		}
		return nil
	}
	part := &fakePartition{}
	if err := f.Process(WithPartition(context.Background(), part), kafka.Message{Offset: 1}); err != nil {
		t.Fatal(err)
	}
	if len(dl.msgs) != 1 || len(part.paused) != 1 || part.resume != 1 || waits != 3 {
		t.Errorf("dead-lettered %v after %d waits, paused %d, resumed %d", dl.msgs, waits, len(part.paused), part.resume)
	}
}

func TestFailurePolicyStopsOnCancel(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry())
	f := NewFailurePolicy(Func(func(context.Context, kafka.Message) error { return errors.New("down") }),
		Policy{OnDecodeError: config.OnDecodeErrorFail}, m, logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if err := f.Process(ctx, kafka.Message{}); err == nil {
		t.Error("a cancelled pause reported success")
	}
}

func TestMetricsDecorator(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry())
	p := NewMetrics(Func(func(_ context.Context, msg kafka.Message) error {
		if msg.Offset == 1 {
			return errors.New("abandoned")
		}
		return nil
	}), m)
	_ = p.Process(context.Background(), kafka.Message{Offset: 0, Value: make([]byte, 10)})
	_ = p.Process(context.Background(), kafka.Message{Offset: 1, Value: make([]byte, 5)})
	if testutil.ToFloat64(m.Messages) != 2 || testutil.ToFloat64(m.Bytes) != 15 || testutil.ToFloat64(m.Abandoned) != 1 ||
		testutil.ToFloat64(m.InFlightMsgs) != 0 || testutil.ToFloat64(m.InFlightBytes) != 0 {
		t.Error("metrics do not add up")
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}
