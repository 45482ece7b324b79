package processor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/decode"
	"github.com/spanflow/spanflow/ingester/eventlog"
	"github.com/spanflow/spanflow/ingester/failure"
	"github.com/spanflow/spanflow/ingester/metrics"
	"github.com/spanflow/spanflow/ingester/otlpwire"
)

// fakePartition records what the chain tells the partition, counting holds as the
// consumer's partition does.
type fakePartition struct {
	mu      sync.Mutex
	done    []int64
	holds   int
	reasons []error
	revoked chan struct{}
}

func newFakePartition() *fakePartition { return &fakePartition{revoked: make(chan struct{})} }

func (p *fakePartition) ID() int { return 0 }
func (p *fakePartition) Done(d *Delivery) {
	p.mu.Lock()
	p.done = append(p.done, d.First())
	p.mu.Unlock()
}
func (p *fakePartition) Hold(reason error) func() {
	p.mu.Lock()
	p.holds++
	p.reasons = append(p.reasons, reason)
	p.mu.Unlock()
	return sync.OnceFunc(func() { p.mu.Lock(); p.holds--; p.mu.Unlock() })
}
func (p *fakePartition) Revoked() <-chan struct{} { return p.revoked }
func (p *fakePartition) held() int                { p.mu.Lock(); defer p.mu.Unlock(); return p.holds }

// delivery makes a delivery of one message per value, at offsets 0, 1, …
func delivery(p Partition, values ...string) *Delivery {
	msgs := make([]kafka.Message, len(values))
	for i, v := range values {
		msgs[i] = kafka.Message{Offset: int64(i), Value: []byte(v)}
		if v == "<tombstone>" {
			msgs[i].Value = nil
		}
	}
	d := NewDelivery(p, msgs)
	d.Tail = true // a live partition's: small ones may be joined
	return d
}

// textDecoder reads a message "a,b,c" as one span per name (the name is its span ID); a
// message starting with "!" is undecodable, and "-" holds no span.
type textDecoder struct{}

func (textDecoder) Decode(b *otlpwire.Batch, data []byte) (int, error) {
	s := string(data)
	if strings.HasPrefix(s, "!") {
		return 0, errors.New("not text")
	}
	td := ptrace.NewTraces()
	if s == "-" {
		return 0, nil
	}
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for _, name := range strings.Split(s, ",") {
		var id pcommon.SpanID
		copy(id[:], name)
		spans.AppendEmpty().SetSpanID(id)
	}
	req := otlpwire.RequestOf(td)
	b.AppendRequest(req.Pieces[0], req.Spans)
	return req.Spans, nil
}

func spanNames(td ptrace.Traces) []string {
	var names []string
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			for k := range sss.At(j).Spans().Len() {
				id := sss.At(j).Spans().At(k).SpanID()
				names = append(names, strings.TrimRight(string(id[:]), "\x00"))
			}
		}
	}
	return names
}

// scriptedWriter stores spans, or answers with what fail says for a batch.
type scriptedWriter struct {
	mu     sync.Mutex
	stored []string
	writes int
	fail   func(names []string) error
	// miscounted counts requests whose span count is not that of their spans.
	miscounted int
}

func (w *scriptedWriter) Write(_ context.Context, req otlpwire.Request) error {
	td, err := req.Traces()
	if err != nil {
		return err
	}
	names := spanNames(td)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if req.Spans != len(names) {
		w.miscounted++
	}
	if w.fail != nil {
		if err := w.fail(names); err != nil && failure.AsRejected(err) == nil {
			return err
		} else if err != nil {
			w.stored = append(w.stored, names...)
			return err
		}
	}
	w.stored = append(w.stored, names...)
	return nil
}

func (w *scriptedWriter) setFail(f func([]string) error) { w.mu.Lock(); w.fail = f; w.mu.Unlock() }
func (w *scriptedWriter) storedNames() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Sorted(slices.Values(w.stored))
}

func newMetrics() *metrics.Metrics { return metrics.New(prometheus.NewRegistry()) }

func quiet() *eventlog.Repeated { return eventlog.Info(logr.Discard(), "", time.Hour) }

func verdicts(d *Delivery) []Verdict { return slices.Clone(d.verdicts) }

func TestBaseGivesEveryMessageItsVerdict(t *testing.T) {
	w := &scriptedWriter{}
	m := newMetrics()
	d := delivery(newFakePartition(), "a,b", "!garbage", "", "<tombstone>", "-", "c")
	if err := NewBase(textDecoder{}, w, 1000, 0, m, quiet()).Process(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	// "-" decodes to no span: bytes that hold none are not a trace (the topic read with
	// the wrong encoding), and are not committed past as if empty.
	want := []Verdict{Written, Undecodable, Empty, Empty, Undecodable, Written}
	if got := verdicts(d); !slices.Equal(got, want) {
		t.Errorf("verdicts %v, want %v", got, want)
	}
	if got := w.storedNames(); !slices.Equal(got, []string{"a", "b", "c"}) || w.writes != 1 {
		t.Errorf("stored %v in %d writes, want a b c in one", got, w.writes)
	}
	if !failure.IsDecode(d.Cause(1)) || !strings.Contains(d.Cause(1).Error(), "offset 1") {
		t.Errorf("cause of the undecodable message: %v", d.Cause(1))
	}
	if !failure.IsDecode(d.Cause(4)) || !strings.Contains(d.Cause(4).Error(), "no span in them") {
		t.Errorf("cause of the message without spans: %v", d.Cause(4))
	}
	if got := testutil.ToFloat64(m.Empty); got != 2 {
		t.Errorf("empty messages counted %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.DecodeErrors); got != 2 {
		t.Errorf("decode errors counted %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.Spans); got != 3 || d.Spans != 3 {
		t.Errorf("spans counted %v / %d, want 3", got, d.Spans)
	}
}

// TestBaseIsolatesRefusedMessages: storage refuses for good any write holding span "x";
// splitting isolates the two messages holding it, and every other message is written.
func TestBaseIsolatesRefusedMessages(t *testing.T) {
	w := &scriptedWriter{fail: func(names []string) error {
		if slices.Contains(names, "x") {
			return failure.Permanent(errors.New("invalid span x"))
		}
		return nil
	}}
	values := make([]string, 64)
	for i := range values {
		values[i] = fmt.Sprintf("s%d", i)
	}
	values[9], values[50] = "x", "y,x"
	d := delivery(newFakePartition(), values...)
	m := newMetrics()
	if err := NewBase(textDecoder{}, w, 1000, 0, m, quiet()).Process(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	for i := range values {
		want := Written
		if i == 9 || i == 50 {
			want = Refused
		}
		if d.Verdict(i) != want {
			t.Errorf("message %d: %v, want %v", i, d.Verdict(i), want)
		}
	}
	if got := len(w.storedNames()); got != 62 {
		t.Errorf("%d spans stored, want the 62 of the good messages", got)
	}
	if !failure.IsPermanent(d.Cause(9)) || !strings.Contains(d.Cause(9).Error(), "offset 9") {
		t.Errorf("cause of the refused message: %v", d.Cause(9))
	}
	// Two bad messages of 64 take at most 2·log2(64)·2 + 1 writes, not one per message.
	if w.writes > 25 {
		t.Errorf("%d writes to isolate 2 of 64 messages", w.writes)
	}
}

// TestBaseSplitsWhatIsTooLarge: a backend that takes at most 3 spans a request gets every
// span, in smaller requests; a single message over the limit is refused.
func TestBaseSplitsWhatIsTooLarge(t *testing.T) {
	w := &scriptedWriter{fail: func(names []string) error {
		if len(names) > 3 {
			return failure.TooLarge(errors.New("413 Request Entity Too Large"))
		}
		return nil
	}}
	d := delivery(newFakePartition(), "a", "b", "c", "d", "e", "f,g", "h", "p,q,r,s")
	if err := NewBase(textDecoder{}, w, 1000, 0, newMetrics(), quiet()).Process(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if got := w.storedNames(); len(got) != 8 {
		t.Errorf("stored %v, want the 8 spans a–h", got)
	}
	if d.Verdict(7) != Refused || d.Count(Written) != 7 {
		t.Errorf("verdicts %v", verdicts(d))
	}
}

// TestBasePartialSuccessIsWritten: rejected spans are counted, and nothing is sent again.
func TestBasePartialSuccessIsWritten(t *testing.T) {
	w := &scriptedWriter{fail: func([]string) error { return &failure.Rejected{Spans: 1, Message: "span too old"} }}
	m := newMetrics()
	chain := NewRetry(NewBase(textDecoder{}, w, 1000, 0, m, quiet()), Backoff{Min: time.Millisecond, Max: time.Millisecond, Attempts: 5}, nil)
	d := delivery(newFakePartition(), "a", "b")
	if err := chain.Process(context.Background(), d); err != nil || !d.Finished() {
		t.Fatalf("err %v, verdicts %v", err, verdicts(d))
	}
	if w.writes != 1 || testutil.ToFloat64(m.RejectedSpans) != 1 {
		t.Errorf("%d writes, %v rejected spans counted; want 1 and 1", w.writes, testutil.ToFloat64(m.RejectedSpans))
	}
}

// fakeDeadLetter records dead letters, failing while fail is set.
type fakeDeadLetter struct {
	mu   sync.Mutex
	msgs []string
	fail error
}

func (f *fakeDeadLetter) DeadLetter(_ context.Context, msg kafka.Message, _ error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.msgs = append(f.msgs, string(msg.Value))
	return nil
}

func (f *fakeDeadLetter) letters() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.msgs)
}

// policyChain is base → retry → failure policy, with instant backoff.
func policyChain(w Writer, policy Policy, m *metrics.Metrics) Processor {
	r := NewRetry(NewBase(textDecoder{}, w, 1000, 0, m, quiet()), Backoff{Attempts: 3}, nil).(*retry)
	r.wait = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	f := NewFailurePolicy(r, policy, m, PolicyLogs{DeadLettered: quiet(), Skipped: quiet()}).(*failurePolicy)
	f.wait = func(ctx context.Context, _ int) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
			return nil
		}
	}
	return f
}

func TestFailurePolicy(t *testing.T) {
	refuseX := func(names []string) error {
		if slices.Contains(names, "x") {
			return failure.Permanent(errors.New("invalid"))
		}
		return nil
	}
	cases := []struct {
		name          string
		onDecodeError string
		deadLetter    bool
		values        []string
		want          []Verdict
		wantLetters   []string
	}{
		{"undecodable skipped", config.OnDecodeErrorSkip, false, []string{"a", "!bad", "b"}, []Verdict{Written, Skipped, Written}, nil},
		{"undecodable dead-lettered", config.OnDecodeErrorDeadletter, true, []string{"a", "!bad", "b"}, []Verdict{Written, DeadLettered, Written}, []string{"!bad"}},
		{"refused dead-lettered alone", config.OnDecodeErrorFail, true, []string{"a", "x", "b", "c"}, []Verdict{Written, DeadLettered, Written, Written}, []string{"x"}},
		{"undecodable skipped, refused dead-lettered", config.OnDecodeErrorSkip, true, []string{"!bad", "x", "a"}, []Verdict{Skipped, DeadLettered, Written}, []string{"x"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dl := &fakeDeadLetter{}
			policy := Policy{OnDecodeError: tc.onDecodeError}
			if tc.deadLetter {
				policy.DeadLetter = dl
			}
			w := &scriptedWriter{fail: refuseX}
			p := newFakePartition()
			d := delivery(p, tc.values...)
			if err := policyChain(w, policy, newMetrics()).Process(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			if got := verdicts(d); !slices.Equal(got, tc.want) {
				t.Errorf("verdicts %v, want %v", got, tc.want)
			}
			if got := dl.letters(); !slices.Equal(got, tc.wantLetters) {
				t.Errorf("dead letters %q, want %q", got, tc.wantLetters)
			}
			if p.held() != 0 || len(p.reasons) != 0 {
				t.Errorf("partition held %d times (%v)", len(p.reasons), p.reasons)
			}
		})
	}
}

// TestOutageIsNeverDeadLettered: storage down past the retries (or refusing credentials)
// holds the partition, and nothing reaches the dead-letter topic; when storage is back,
// the delivery is written and the hold released.
func TestOutageIsNeverDeadLettered(t *testing.T) {
	dl := &fakeDeadLetter{}
	w := &scriptedWriter{fail: func([]string) error { return errors.New("otlp/grpc: Unauthenticated") }}
	p := newFakePartition()
	d := delivery(p, "a", "b")
	done := make(chan error, 1)
	go func() {
		done <- policyChain(w, Policy{OnDecodeError: config.OnDecodeErrorDeadletter, DeadLetter: dl}, newMetrics()).Process(context.Background(), d)
	}()
	waitUntil(t, func() bool { return p.held() == 1 })
	time.Sleep(20 * time.Millisecond) // many attempts pass while it is held
	w.setFail(nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := dl.letters(); len(got) != 0 {
		t.Errorf("an outage dead-lettered %q", got)
	}
	if p.held() != 0 || d.Count(Written) != 2 || !strings.Contains(p.reasons[0].Error(), "Unauthenticated") {
		t.Errorf("held %d, verdicts %v, reason %v", p.held(), verdicts(d), p.reasons[0])
	}
}

// TestRefusedWithoutDeadLetterHoldsUntilWritten: without a dead-letter topic, a message
// storage refuses holds its partition (its neighbours are written at once) until storage
// takes it.
func TestRefusedWithoutDeadLetterHoldsUntilWritten(t *testing.T) {
	w := &scriptedWriter{fail: func(names []string) error {
		if slices.Contains(names, "x") {
			return failure.Permanent(errors.New("invalid span"))
		}
		return nil
	}}
	p := newFakePartition()
	d := delivery(p, "a", "x", "b")
	done := make(chan error, 1)
	go func() {
		done <- policyChain(w, Policy{OnDecodeError: config.OnDecodeErrorFail}, newMetrics()).Process(context.Background(), d)
	}()
	waitUntil(t, func() bool { return p.held() == 1 })
	if got := w.storedNames(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("while held, stored %v; want the neighbours a and b", got)
	}
	if r := p.reasons[0].Error(); !strings.Contains(r, "offset 1") || !strings.Contains(r, "invalid span") {
		t.Errorf("hold reason %q does not name the message and the cause", r)
	}
	w.setFail(nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p.held() != 0 || !d.Finished() || len(w.storedNames()) != 3 {
		t.Errorf("held %d, verdicts %v, stored %v", p.held(), verdicts(d), w.storedNames())
	}
}

// TestTwoHeldDeliveriesHoldTheirPartitionApart: two deliveries of one partition each
// hold it for a refused message; writing the first one's releases only its hold, and
// the partition is free once both are written.
func TestTwoHeldDeliveriesHoldTheirPartitionApart(t *testing.T) {
	refused := map[string]bool{"x": true, "y": true}
	var mu sync.Mutex
	w := &scriptedWriter{fail: func(names []string) error {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range names {
			if refused[n] {
				return failure.Permanent(fmt.Errorf("invalid span %s", n))
			}
		}
		return nil
	}}
	allow := func(name string) { mu.Lock(); delete(refused, name); mu.Unlock() }
	p := newFakePartition()
	chain := policyChain(w, Policy{OnDecodeError: config.OnDecodeErrorFail}, newMetrics())
	process := func(d *Delivery) <-chan error {
		done := make(chan error, 1)
		go func() { done <- chain.Process(context.Background(), d) }()
		return done
	}
	first := process(delivery(p, "a", "x"))
	second := process(NewDelivery(p, []kafka.Message{{Offset: 2, Value: []byte("y")}, {Offset: 3, Value: []byte("b")}}))
	waitUntil(t, func() bool { return p.held() == 2 })

	allow("x")
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got := p.held(); got != 1 {
		t.Fatalf("%d holds with the second delivery still refused, want 1", got)
	}
	allow("y")
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if got := p.held(); got != 0 {
		t.Errorf("%d holds with both deliveries written", got)
	}
	if got := w.storedNames(); !slices.Equal(got, []string{"a", "b", "x", "y"}) {
		t.Errorf("stored %v", got)
	}
}

// TestFailurePolicyKeepsTryingWhenDeadLetteringFails: a dead letter that cannot be produced
// holds the partition, and is produced once the topic takes it; nothing is skipped.
func TestFailurePolicyKeepsTryingWhenDeadLetteringFails(t *testing.T) {
	dl := &fakeDeadLetter{fail: errors.New("broker down")}
	p := newFakePartition()
	d := delivery(p, "!bad", "a")
	done := make(chan error, 1)
	go func() {
		done <- policyChain(&scriptedWriter{}, Policy{OnDecodeError: config.OnDecodeErrorDeadletter, DeadLetter: dl}, newMetrics()).Process(context.Background(), d)
	}()
	waitUntil(t, func() bool { return p.held() == 1 })
	dl.mu.Lock()
	dl.fail = nil
	dl.mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := dl.letters(); !slices.Equal(got, []string{"!bad"}) || d.Verdict(0) != DeadLettered || p.held() != 0 {
		t.Errorf("dead letters %q, verdicts %v, held %d", got, verdicts(d), p.held())
	}
}

// TestFailurePolicyStopsOnCancel: a held delivery gives up when its context ends (the
// drain timed out): it is unfinished and its hold released.
func TestFailurePolicyStopsOnCancel(t *testing.T) {
	p := newFakePartition()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- policyChain(&scriptedWriter{}, Policy{OnDecodeError: config.OnDecodeErrorFail}, newMetrics()).Process(ctx, delivery(p, "!bad"))
	}()
	waitUntil(t, func() bool { return p.held() == 1 })
	cancel()
	if err := <-done; err == nil {
		t.Error("a cancelled, stuck delivery reported success")
	}
	if p.held() != 0 {
		t.Error("the hold outlived the delivery")
	}
}

func TestCommittingMarksOnlySuccess(t *testing.T) {
	p := newFakePartition()
	fail := errors.New("down")
	c := NewCommitting(Func(func(_ context.Context, d *Delivery) error {
		if d.First() == 0 {
			return fail
		}
		return nil
	}))
	d0, d1 := delivery(p, "a"), NewDelivery(p, []kafka.Message{{Offset: 1}, {Offset: 2}})
	if err := c.Process(context.Background(), d0); !errors.Is(err, fail) {
		t.Errorf("error not passed on: %v", err)
	}
	if err := c.Process(context.Background(), d1); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.done, []int64{1}) {
		t.Errorf("done %v, want only the delivery from 1", p.done)
	}
}

// blockingWriter blocks every write until release is closed, counting the writes running.
type blockingWriter struct {
	release chan struct{}
	running atomic.Int32
	max     atomic.Int32
}

func (w *blockingWriter) Write(ctx context.Context, _ otlpwire.Request) error {
	n := w.running.Add(1)
	defer w.running.Add(-1)
	for {
		m := w.max.Load()
		if n <= m || w.max.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-w.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestWritesDoNotHoldTheirTurn: a delivery gives its turn on a CPU back once decoded, not
// once written: with one CPU and four slots, four writes to a slow backend are in flight
// at once, each delivery formed in a reservation of its own.
func TestWritesDoNotHoldTheirTurn(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	w := &blockingWriter{release: make(chan struct{})}
	pool := NewParallel(NewBase(textDecoder{}, w, 1000, 0, newMetrics(), quiet()), 4, 0, func(*Delivery, error) {})
	p := newFakePartition()
	for range 4 {
		r, err := pool.Reserve(context.Background(), p.Revoked())
		if err != nil {
			t.Fatal(err)
		}
		if pool.turns.taken() != 1 {
			t.Fatalf("%d turns taken by a reservation, want 1", pool.turns.taken())
		}
		if err := r.Start(context.Background(), delivery(p, "a")); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, func() bool { return pool.turns.taken() == 0 }) // decoded: the turn is back
	}
	waitUntil(t, func() bool { return w.running.Load() == 4 })
	close(w.release)
	pool.Close()
}

func TestParallelBoundsDeliveriesAndBytes(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	var unfinished atomic.Int32
	pool := NewParallel(NewBase(textDecoder{}, w, 1000, 0, newMetrics(), quiet()), 3, 0, func(*Delivery, error) { unfinished.Add(1) })
	p := newFakePartition()
	for range 3 {
		if err := pool.Process(context.Background(), delivery(p, "a")); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, func() bool { return w.running.Load() == 3 })
	// A fourth waits for room; raising the limit lets it in at once.
	handed := make(chan error, 1)
	go func() { handed <- pool.Process(context.Background(), delivery(p, "b")) }()
	select {
	case <-handed:
		t.Fatal("a fourth delivery was handed over past the limit of 3")
	case <-time.After(50 * time.Millisecond):
	}
	pool.SetLimit(4)
	if err := <-handed; err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return w.running.Load() == 4 })
	close(w.release)
	pool.Close()
	if w.max.Load() != 4 || unfinished.Load() != 0 {
		t.Errorf("at most %d writes at once, %d unfinished", w.max.Load(), unfinished.Load())
	}

	// The byte bound: two deliveries of 6 bytes do not fit in 10 at once.
	w = &blockingWriter{release: make(chan struct{})}
	pool = NewParallel(NewBase(textDecoder{}, w, 1000, 0, newMetrics(), quiet()), 10, 10, func(*Delivery, error) {})
	if err := pool.Process(context.Background(), delivery(p, "aaaaaa")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := pool.Process(ctx, delivery(p, "bbbbbb")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("over the byte bound: %v, want to wait", err)
	}
	close(w.release)
	pool.Close()
}

func TestParallelGivesUpTheHandOverOnRevoke(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	pool := NewParallel(NewBase(textDecoder{}, w, 1000, 0, newMetrics(), quiet()), 1, 0, func(*Delivery, error) {})
	p := newFakePartition()
	if err := pool.Process(context.Background(), delivery(p, "a")); err != nil {
		t.Fatal(err)
	}
	handed := make(chan error, 1)
	go func() { handed <- pool.Process(context.Background(), delivery(p, "b")) }()
	close(p.revoked)
	if err := <-handed; !errors.Is(err, ErrRevoked) {
		t.Errorf("revoked while waiting: %v, want ErrRevoked", err)
	}
	close(w.release)
	pool.Close()
}

// TestCancellingOneDeliveryFailsNoOther: each delivery is its own write; the caller of one
// going away (its partition's drain timing out) leaves the others to finish.
func TestCancellingOneDeliveryFailsNoOther(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	var mu sync.Mutex
	var unfinished []int64
	chain := NewCommitting(NewBase(textDecoder{}, w, 1000, 0, newMetrics(), quiet()))
	pool := NewParallel(chain, 4, 0, func(d *Delivery, _ error) { mu.Lock(); unfinished = append(unfinished, d.First()); mu.Unlock() })
	gone, stays := newFakePartition(), newFakePartition()
	ctx, cancel := context.WithCancel(context.Background())
	if err := pool.Process(ctx, delivery(gone, "a")); err != nil {
		t.Fatal(err)
	}
	if err := pool.Process(context.Background(), NewDelivery(stays, []kafka.Message{{Offset: 7, Value: []byte("b")}})); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return w.running.Load() == 2 })
	cancel()
	waitUntil(t, func() bool { return w.running.Load() == 1 })
	close(w.release)
	pool.Close()
	if !slices.Equal(unfinished, []int64{0}) || !slices.Equal(stays.done, []int64{7}) || len(gone.done) != 0 {
		t.Errorf("unfinished %v, done %v / %v", unfinished, stays.done, gone.done)
	}
}

func TestMetricsDecorator(t *testing.T) {
	m := newMetrics()
	p := NewMetrics(Func(func(_ context.Context, d *Delivery) error {
		if d.First() == 0 {
			return errors.New("unfinished")
		}
		return nil
	}), m)
	_ = p.Process(context.Background(), delivery(newFakePartition(), "ab", "cd"))
	_ = p.Process(context.Background(), NewDelivery(newFakePartition(), []kafka.Message{{Offset: 5, Value: []byte("xyz")}}))
	if got := testutil.ToFloat64(m.Messages); got != 3 {
		t.Errorf("messages %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.Bytes); got != 7 {
		t.Errorf("bytes %v, want 7", got)
	}
	if got := testutil.ToFloat64(m.Abandoned); got != 2 {
		t.Errorf("abandoned %v, want the 2 messages of the failed delivery", got)
	}
	if got := testutil.ToFloat64(m.InFlightMsgs); got != 0 {
		t.Errorf("in flight %v after both finished", got)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestADecodeErrorIsCountedOnce: a message held for its decode error (onDecodeError: fail)
// is decoded again at every attempt; decode_errors_total counts messages, not attempts.
func TestADecodeErrorIsCountedOnce(t *testing.T) {
	m := newMetrics()
	b := NewBase(textDecoder{}, &scriptedWriter{}, 1000, 0, m, quiet())
	d := delivery(newFakePartition(), "!garbage", "-", "a")
	for range 3 {
		if err := b.Process(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		for i, v := range verdicts(d) {
			if v == Undecodable {
				d.reopen(i)
			}
		}
	}
	if got := testutil.ToFloat64(m.DecodeErrors); got != 2 {
		t.Errorf("decode errors counted %v after three attempts at two messages, want 2", got)
	}
}

// TestResourcesWithoutSpansAreEmpty: with the OTLP decoders, a request of resources
// without spans is empty (committed past), while bytes that hold not even a resource —
// JSON of another shape, as a topic read with the wrong encoding gives — are undecodable.
func TestResourcesWithoutSpansAreEmpty(t *testing.T) {
	empty := ptrace.NewTraces()
	empty.ResourceSpans().AppendEmpty().Resource().Attributes().PutStr("service.name", "idle")
	wire, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(empty)
	if err != nil {
		t.Fatal(err)
	}
	for encoding, values := range map[string][]string{
		config.EncodingOTLPProto: {string(wire)},
		config.EncodingOTLPJSON:  {`{"resourceSpans":[{"resource":{"attributes":[]}}]}`, `{"hello":"world"}`, `{}`},
	} {
		decoder, err := decode.New(encoding)
		if err != nil {
			t.Fatal(err)
		}
		d := delivery(newFakePartition(), values...)
		if err := NewBase(decoder, &scriptedWriter{}, 1000, 0, newMetrics(), quiet()).Process(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		want := []Verdict{Empty, Undecodable, Undecodable}[:len(values)]
		if got := verdicts(d); !slices.Equal(got, want) {
			t.Errorf("%s: verdicts %v, want %v", encoding, got, want)
		}
	}
}
