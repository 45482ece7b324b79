package ingester

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/store"
	"github.com/spanflow/spanflow/internal/kafkatest"
)

// running is an ingester started in this process by startIngester.
type running struct {
	cancel context.CancelFunc
	done   chan error
	admin  string
}

func startIngester(t *testing.T, cfg config.Config, writer store.Writer) *running {
	t.Helper()
	return startIngesterLogging(t, cfg, writer, testr.NewWithOptions(t, testr.Options{Verbosity: 0}))
}

// startIngesterLogging is startIngester with the logger log.
func startIngesterLogging(t *testing.T, cfg config.Config, writer store.Writer, log logr.Logger) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	adminAddr := make(chan string, 1)
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- Run(ctx, cfg, Options{Writer: writer, AdminReady: func(a string) { adminAddr <- a }}, log)
	}()
	select {
	case r.admin = <-adminAddr:
	case err := <-r.done:
		t.Fatalf("ingester did not start: %v", err)
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop stops the ingester as SIGTERM does and waits for it; it is idempotent.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("ingester did not stop cleanly: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("ingester did not stop within a minute")
	}
}

// readyz returns the status code and body of the ingester's /readyz.
func (r *running) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + r.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// spanIndex maps each partition's messages to the spans they hold, read back from the
// broker, so that committed offsets can be checked against what storage has.
type spanIndex map[int][]indexedMessage

type indexedMessage struct {
	offset int64
	spans  []store.SpanKey
}

func indexTopic(t *testing.T, b *kafkatest.Broker, topic string, partitions int) (spanIndex, int) {
	t.Helper()
	idx := spanIndex{}
	total := 0
	var u ptrace.ProtoUnmarshaler
	for _, msg := range b.ReadAll(t, topic, partitions) {
		td, err := u.UnmarshalTraces(msg.Value)
		if err != nil {
			continue // a poison message holds no span
		}
		keys := spanKeys(td)
		total += len(keys)
		idx[msg.Partition] = append(idx[msg.Partition], indexedMessage{offset: msg.Offset, spans: keys})
	}
	return idx, total
}

func spanKeys(td ptrace.Traces) []store.SpanKey {
	return slices.Collect(store.SpanKeys(td))
}

// assertCommitsCovered fails if a committed offset passes a message whose spans are not
// all in storage: the one thing at-least-once must never do.
func assertCommitsCovered(t *testing.T, committed map[int]int64, idx spanIndex, mem *store.Memory) {
	t.Helper()
	for p, c := range committed {
		for _, m := range idx[p] {
			if m.offset >= c {
				break
			}
			for _, k := range m.spans {
				if !mem.Has(k) {
					t.Fatalf("partition %d committed at %d, but the spans of offset %d are not stored", p, c, m.offset)
				}
			}
		}
	}
}

// produceSteadily produces batches of messages until stop is closed, returning how many
// it produced in total once it has stopped.
func produceSteadily(t *testing.T, b *kafkatest.Broker, topic string, perBatch int, every time.Duration, stop <-chan struct{}) <-chan int {
	produced := make(chan int, 1)
	go func() {
		n := 0
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				produced <- n
				return
			case <-tick.C:
			}
			if err := b.TryProduce(topic, kafkatest.OTLPProtoMessages(t, uint64(n), perBatch, 2)...); err != nil {
				t.Error(err)
				produced <- n
				return
			}
			n += perBatch
		}
	}()
	return produced
}

// metricsLines reads the ingester's /metrics, a line each.
func metricsLines(t *testing.T, admin string) []string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return strings.Split(string(data), "\n")
}

// scrapeValue reads one unlabelled sample from the ingester's /metrics; -1 when absent.
func scrapeValue(t *testing.T, admin, name string) float64 {
	t.Helper()
	for _, line := range metricsLines(t, admin) {
		if value, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

// scrapePartitionsSum adds up a per-partition gauge's samples on the ingester's /metrics.
func scrapePartitionsSum(t *testing.T, admin, name string) float64 {
	t.Helper()
	var sum float64
	for _, line := range metricsLines(t, admin) {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		_, value, _ := strings.Cut(line, "} ")
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		sum += v
	}
	return sum
}

// logEntry is one line a recordingSink received.
type logEntry struct {
	error bool  // an Error line
	err   error // its error
	level int   // the V level of an Info line
	msg   string
	kvs   []any // WithValues' key-values, then the line's
}

// String is the line as a person reads it: the message, the error and every value.
func (e logEntry) String() string {
	var b strings.Builder
	b.WriteString(e.msg)
	if e.err != nil {
		b.WriteString(" error=" + e.err.Error())
	}
	for i := 0; i+1 < len(e.kvs); i += 2 {
		fmt.Fprintf(&b, " %v=%v", e.kvs[i], e.kvs[i+1])
	}
	return b.String()
}

// logRecorder keeps every line logged at V(0) (and every error) through its Logger,
// and passes them on to the test's log.
type logRecorder struct {
	mu      sync.Mutex
	entries []logEntry
}

func (r *logRecorder) Logger(t *testing.T) logr.Logger {
	return logr.New(&recordingSink{r: r, next: testr.NewWithOptions(t, testr.Options{Verbosity: 0}).GetSink()})
}

// find returns the recorded lines for which match holds.
func (r *logRecorder) find(match func(logEntry) bool) []logEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var found []logEntry
	for _, e := range r.entries {
		if match(e) {
			found = append(found, e)
		}
	}
	return found
}

type recordingSink struct {
	r      *logRecorder
	next   logr.LogSink
	values []any
}

func (s *recordingSink) Init(info logr.RuntimeInfo) { s.next.Init(info) }
func (s *recordingSink) Enabled(level int) bool     { return level == 0 }
func (s *recordingSink) Info(level int, msg string, kvs ...any) {
	s.r.mu.Lock()
	s.r.entries = append(s.r.entries, logEntry{level: level, msg: msg, kvs: append(slices.Clone(s.values), kvs...)})
	s.r.mu.Unlock()
	s.next.Info(level, msg, kvs...)
}
func (s *recordingSink) Error(err error, msg string, kvs ...any) {
	s.r.mu.Lock()
	s.r.entries = append(s.r.entries, logEntry{error: true, err: err, msg: msg, kvs: append(slices.Clone(s.values), kvs...)})
	s.r.mu.Unlock()
	s.next.Error(err, msg, kvs...)
}
func (s *recordingSink) WithValues(kvs ...any) logr.LogSink {
	return &recordingSink{r: s.r, next: s.next.WithValues(kvs...), values: append(slices.Clone(s.values), kvs...)}
}
func (s *recordingSink) WithName(name string) logr.LogSink {
	return &recordingSink{r: s.r, next: s.next.WithName(name), values: s.values}
}
