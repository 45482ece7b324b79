package ingester

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/otlpwire"
	"github.com/spanflow/spanflow/ingester/store"
	"github.com/spanflow/spanflow/internal/kafkatest"
)

const partitions = 4

// testConfig is a valid config with fast group and fetch timings for the broker at addr.
func testConfig(addr, topic, group string) config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{addr}
	cfg.Kafka.Topic = topic
	cfg.Kafka.ConsumerGroup = group
	cfg.Kafka.SessionTimeout = config.Duration(2 * time.Second)
	cfg.Kafka.HeartbeatInterval = config.Duration(100 * time.Millisecond)
	cfg.Kafka.RebalanceTimeout = config.Duration(6 * time.Second) // longer than the drain, as Validate requires
	cfg.Kafka.MaxWait = config.Duration(100 * time.Millisecond)
	cfg.Kafka.CommitInterval = config.Duration(100 * time.Millisecond)
	cfg.AdminAddress = "127.0.0.1:0"
	cfg.DrainTimeout = config.Duration(5 * time.Second)
	cfg.Storage.Type = config.StorageBlackhole // the tests give the ingester their own writers
	return cfg
}

// ingestUntil runs the ingester until the writer has seen want spans, then stops it the
// way SIGTERM does and waits for it to return.
func ingestUntil(t *testing.T, cfg config.Config, writer *store.Blackhole, want int64) {
	t.Helper()
	r := startIngester(t, cfg, writer)
	waitFor(t, 60*time.Second, fmt.Sprintf("%d spans", want), func() bool { return writer.Spans() >= want })
	r.stop(t)
}

func assertCommittedToEnd(t *testing.T, b *kafkatest.Broker, group, topic string) {
	t.Helper()
	end := b.EndOffsets(t, topic, partitions)
	committed := b.CommittedOffsets(t, group, topic, partitions)
	for p := range partitions {
		if end[p] == 0 && committed[p] == -1 {
			continue // an empty partition has nothing to commit
		}
		if committed[p] != end[p] {
			t.Errorf("partition %d: committed offset %d, log end %d", p, committed[p], end[p])
		}
	}
}

// TestIngestsEverySpanAndCommits produces OTLP spans to a real Kafka-protocol broker, runs
// the ingester in its consumer group, and checks that every span was written exactly once
// (no loss, no duplicate in a clean run) and that the committed offsets reached the end.
// A second run of the same group then reads only what was produced after the first.
func TestIngestsEverySpanAndCommits(t *testing.T) {
	const topic, group = "otlp_spans", "test-group"
	b := kafkatest.Start(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 400, 5)...)
	cfg := testConfig(b.Addr, topic, group)

	writer := &store.Blackhole{}
	ingestUntil(t, cfg, writer, 2000)
	if got := writer.Spans(); got != 2000 {
		t.Errorf("wrote %d spans, want exactly 2000", got)
	}
	assertCommittedToEnd(t, b, group, topic)

	// Restarted, the group resumes from its commits: only the new messages are read.
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 1000, 100, 3)...)
	writer = &store.Blackhole{}
	ingestUntil(t, cfg, writer, 300)
	if got := writer.Spans(); got != 300 {
		t.Errorf("after restart wrote %d spans, want exactly the 300 new ones", got)
	}
	assertCommittedToEnd(t, b, group, topic)
}

// otlpJSONLines writes messages OTLP/JSON traces of spansPer spans each (kafkatest.Traces
// 0 to messages-1), one a line, to a file for kcat -l, and returns its path.
func otlpJSONLines(t *testing.T, messages, spansPer int) string {
	t.Helper()
	var m ptrace.JSONMarshaler
	var lines []string
	for i := range messages {
		data, err := m.MarshalTraces(kafkatest.Traces(uint64(i), spansPer))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(data))
	}
	input := filepath.Join(t.TempDir(), "spans.jsonl")
	if err := os.WriteFile(input, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return input
}

// TestIngestsWhatKcatProduced has librdkafka's kcat, an independent Kafka client, produce
// OTLP/JSON spans, one message per line, and checks the ingester reads them all.
func TestIngestsWhatKcatProduced(t *testing.T) {
	kcat := lookKcat(t)
	const topic, group = "otlp_json_spans", "kcat-group"
	b := kafkatest.Start(t, topic, partitions)

	input := otlpJSONLines(t, 50, 4)
	out, err := exec.Command(kcat, "-P", "-b", b.Addr, "-t", topic, "-X", "acks=all", "-l", input).CombinedOutput()
	if err != nil {
		t.Fatalf("kcat produce: %v\n%s", err, out)
	}

	cfg := testConfig(b.Addr, topic, group)
	cfg.Encoding = config.EncodingOTLPJSON
	writer := &store.Blackhole{}
	ingestUntil(t, cfg, writer, 200)
	if got := writer.Spans(); got != 200 {
		t.Errorf("wrote %d spans, want exactly 200", got)
	}
	assertCommittedToEnd(t, b, group, topic)

	// kcat, in its own consumer group, reads the same 50 messages the ingester did.
	out, err = exec.Command(kcat, "-C", "-b", b.Addr, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%o\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat consume: %v\n%s", err, out)
	}
	if n := len(strings.Fields(string(out))); n != 50 {
		t.Errorf("kcat read %d messages, want 50", n)
	}
}

// TestIngestsWhatKcatCompressed: librdkafka batches many messages at once and is asked to
// compress them with each codec a producer may choose (gzip, snappy, lz4, zstd), each
// message with a key and a header; the ingester reads every span of every codec once, its
// fetches decompressing what another client's compressor wrote. Debian's librdkafka (2.0)
// compresses only the zstd batches here: it takes a broker without Produce v0 to v2 (kfake;
// Kafka 4 removed them too) for one without gzip, snappy and lz4, and sends those batches
// uncompressed. TestIngestsWhatFranzGoCompressed has batches of each codec.
func TestIngestsWhatKcatCompressed(t *testing.T) {
	kcat := lookKcat(t)
	const topic, group, perCodec, spansPer = "compressed_spans", "kcat-compressed", 60, 3
	codecs := []string{"gzip", "snappy", "lz4", "zstd"}
	b := kafkatest.Start(t, topic, partitions)

	var m ptrace.JSONMarshaler
	for c, codec := range codecs {
		var lines []string
		for i := range perCodec {
			data, err := m.MarshalTraces(kafkatest.Traces(uint64(c*perCodec+i), spansPer))
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, fmt.Sprintf("trace-%d|%s", c*perCodec+i, data))
		}
		input := filepath.Join(t.TempDir(), codec+".jsonl")
		if err := os.WriteFile(input, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// linger.ms holds the messages so that they go in batches of many, compressed whole.
		out, err := exec.Command(kcat, "-P", "-b", b.Addr, "-t", topic, "-z", codec, "-K", "|",
			"-H", "producer=kcat", "-X", "acks=all", "-X", "linger.ms=200", "-l", input).CombinedOutput()
		if err != nil {
			t.Fatalf("kcat produce with %s: %v\n%s", codec, err, out)
		}
	}

	seen := map[int]bool{}
	for p := range partitions {
		for _, batch := range recordBatches(t, b, topic, p) {
			seen[batch.codec] = true
		}
	}
	if !seen[4] {
		t.Fatalf("kcat wrote batches of codecs %v, none of zstd (4)", seen)
	}

	cfg := testConfig(b.Addr, topic, group)
	cfg.Encoding = config.EncodingOTLPJSON
	memory := store.NewMemory()
	r := startIngester(t, cfg, memory)
	want := len(codecs) * perCodec * spansPer
	waitFor(t, 60*time.Second, fmt.Sprintf("%d distinct spans", want), func() bool {
		distinct, _ := memory.Counts()
		return distinct >= want
	})
	r.stop(t)
	if distinct, duplicates := memory.Counts(); distinct != want || duplicates != 0 {
		t.Errorf("stored %d distinct spans (%d again), want %d once each", distinct, duplicates, want)
	}
	for c := range codecs {
		for _, i := range []int{0, perCodec - 1} {
			for key := range store.SpanKeys(kafkatest.Traces(uint64(c*perCodec+i), spansPer)) {
				if !memory.Has(key) {
					t.Errorf("%s: span %v of message %d is missing", codecs[c], key, i)
				}
			}
		}
	}
	assertCommittedToEnd(t, b, group, topic)
}

// lookKcat finds kcat (Debian's kafkacat). CI installs it, so there its absence fails the
// test; elsewhere the test is skipped with the reason.
func lookKcat(t *testing.T) string {
	for _, name := range []string{"kcat", "kafkacat"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("kcat is not installed; .ci/run installs Debian's kafkacat package")
	}
	t.Skip("kcat is not installed (apt-get install kafkacat); skipping the independent-client test")
	return ""
}

// TestMetricsCountLibraryDecodes: the otlp_json messages the fast path leaves to pdata (here,
// those with a field it does not know) are counted on /metrics, the others not, and every
// span is written either way.
func TestMetricsCountLibraryDecodes(t *testing.T) {
	const topic, group = "otlp_json_spans", "library"
	b := kafkatest.Start(t, topic, partitions)
	var m ptrace.JSONMarshaler
	var msgs []kafka.Message
	for i := range 20 {
		data, err := m.MarshalTraces(kafkatest.Traces(uint64(i), 3))
		if err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 { // a field of a newer OTLP than pdata's
			data = bytes.Replace(data, []byte(`{"resourceSpans":[`), []byte(`{"newerField":1,"resourceSpans":[`), 1)
		}
		msgs = append(msgs, kafka.Message{Value: data})
	}
	b.Produce(t, topic, msgs...)
	cfg := testConfig(b.Addr, topic, group)
	cfg.Encoding = config.EncodingOTLPJSON
	writer := &store.Blackhole{}
	r := startIngester(t, cfg, writer)
	waitFor(t, 30*time.Second, "60 spans", func() bool { return writer.Spans() == 60 })
	if left := scrapeValue(t, r.admin, "spanflow_ingester_decode_library_total"); left != 5 {
		t.Errorf("/metrics counts %v messages left to the library, want 5", left)
	}
}

// TestMetricsEndpoint checks that /metrics reports what was consumed, written and committed.
func TestMetricsEndpoint(t *testing.T) {
	const topic, group = "otlp_spans", "metrics"
	b := kafkatest.Start(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 100, 3)...)
	writer := &store.Blackhole{}
	r := startIngester(t, testConfig(b.Addr, topic, group), writer)
	waitFor(t, 30*time.Second, "300 spans", func() bool { return writer.Spans() == 300 })

	var body string
	waitFor(t, 10*time.Second, "the commits to show in /metrics", func() bool {
		resp, err := http.Get("http://" + r.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		body = string(data)
		return strings.Contains(body, `spanflow_ingester_commits_total{result="ok"}`)
	})
	for _, want := range []string{
		"spanflow_ingester_messages_total 100",
		"spanflow_ingester_spans_written_total 300",
		"spanflow_ingester_partitions_assigned 4",
		`spanflow_ingester_committed_offset{partition="0"}`,
		"spanflow_ingester_lag_records{partition=\"0\"} 0\n", // the whole value: 0.41 is not 0
		"spanflow_ingester_delivery_messages_sum 100",
		"spanflow_ingester_lag_seconds{partition=\"0\"} 0\n",
		"spanflow_ingester_topic_missing 0",
		"spanflow_ingester_in_flight_messages 0",
		"spanflow_ingester_decode_library_total 0\n", // otlp_proto reads every message itself
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// waitingWriter stores once its gate is open; until then every write waits.
type waitingWriter struct {
	*store.Memory
	gate chan struct{}
}

func (w *waitingWriter) Write(ctx context.Context, td otlpwire.Request) error {
	select {
	case <-w.gate:
		return w.Memory.Write(ctx, td)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestLagSecondsFallsToZeroWhenCaughtUp: behind records an hour old, lag_seconds is about
// an hour; once the ingester has caught up it is exactly 0 (the age of the newest record
// is not lag when nothing is waiting).
func TestLagSecondsFallsToZeroWhenCaughtUp(t *testing.T) {
	const topic, group = "spans", "lag-seconds"
	b := kafkatest.Start(t, topic, 1)
	msgs := kafkatest.OTLPProtoMessages(t, 0, 100, 1)
	for i := range msgs {
		msgs[i].Time = time.Now().Add(-time.Hour)
	}
	b.Produce(t, topic, msgs...)
	w := &waitingWriter{Memory: store.NewMemory(), gate: make(chan struct{})}
	cfg := testConfig(b.Addr, topic, group)
	cfg.Processing.BatchSize = 10 // ten deliveries, one written at a time
	cfg.Parallelism = 1
	r := startIngester(t, cfg, w)
	const lagSeconds = `spanflow_ingester_lag_seconds{partition="0"}`

	// The first delivery waits at the gate, the second is fetched behind it.
	waitFor(t, 30*time.Second, "lag_seconds while behind", func() bool { return scrapeValue(t, r.admin, lagSeconds) > 0 })
	if lag := scrapeValue(t, r.admin, lagSeconds); lag < 3500 || lag > 3700 {
		t.Errorf("lag_seconds %v behind records an hour old, want about 3600", lag)
	}
	close(w.gate)
	waitFor(t, 30*time.Second, "every span", func() bool { n, _ := w.Counts(); return n == 100 })
	waitFor(t, 10*time.Second, "the offsets to reach the end", func() bool { return b.CommittedOffsets(t, group, topic, 1)[0] == 100 })
	if lag := scrapeValue(t, r.admin, lagSeconds); lag != 0 {
		t.Errorf("lag_seconds %v after catching up, want exactly 0", lag)
	}
	if lag := scrapeValue(t, r.admin, `spanflow_ingester_lag_records{partition="0"}`); lag != 0 {
		t.Errorf("lag_records %v after catching up, want 0", lag)
	}
	r.stop(t)
}

// closeCheckingWriter stores slowly, and fails the test if Write is called after Close
// or Close while a Write is running.
type closeCheckingWriter struct {
	*store.Memory
	t       *testing.T
	mu      sync.Mutex
	writing int
	closed  bool
}

func (w *closeCheckingWriter) Write(ctx context.Context, td otlpwire.Request) error {
	w.mu.Lock()
	if w.closed {
		w.t.Error("Write called after the writer was closed")
	}
	w.writing++
	w.mu.Unlock()
	defer func() { w.mu.Lock(); w.writing--; w.mu.Unlock() }()
	time.Sleep(20 * time.Millisecond) // slow storage, so that a stop finds writes running
	return w.Memory.Write(ctx, td)
}

func (w *closeCheckingWriter) Close(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.writing > 0 {
		w.t.Errorf("the writer was closed while %d writes were running", w.writing)
	}
	w.closed = true
	return nil
}

// TestNothingIsWrittenAfterTheWriterCloses: a stop in the middle of a backlog drains the
// deliveries in flight before the writer is closed, and none is written after.
func TestNothingIsWrittenAfterTheWriterCloses(t *testing.T) {
	const topic, group = "spans", "closing"
	b := kafkatest.Start(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 2000, 1)...)
	w := &closeCheckingWriter{Memory: store.NewMemory(), t: t}
	cfg := testConfig(b.Addr, topic, group)
	cfg.Processing.BatchSize = 20 // many small writes
	r := startIngester(t, cfg, w)
	waitFor(t, 30*time.Second, "some spans", func() bool { n, _ := w.Counts(); return n >= 100 })
	r.stop(t)
	assertCommitsCovered(t, b.CommittedOffsets(t, group, topic, partitions), mustIndex(t, b, topic), w.Memory)
}

// stuckWriter fails every write. From the fourth on (the failure policy holds the
// partition by then) a write is stuck, ignoring its context as a call hanging in the
// network does, until unstick or Close. It fails the test if Write is called after Close
// or Close while a Write is running.
type stuckWriter struct {
	t       *testing.T
	stuck   chan struct{} // told when a write gets stuck
	unstuck chan struct{} // closed to let the stuck writes fail
	once    sync.Once

	mu      sync.Mutex
	calls   int
	writing int
	closed  bool
}

func newStuckWriter(t *testing.T) *stuckWriter {
	return &stuckWriter{t: t, stuck: make(chan struct{}, 1), unstuck: make(chan struct{})}
}

func (w *stuckWriter) Write(context.Context, otlpwire.Request) error {
	w.mu.Lock()
	if w.closed {
		w.t.Error("Write called after the writer was closed")
	}
	w.calls++
	call := w.calls
	w.writing++
	w.mu.Unlock()
	defer func() { w.mu.Lock(); w.writing--; w.mu.Unlock() }()
	if call >= 4 {
		select {
		case w.stuck <- struct{}{}:
		default:
		}
		<-w.unstuck
	}
	return errors.New("otlp/grpc: rpc error: code = Unavailable desc = connection refused")
}

func (w *stuckWriter) Close(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.writing > 0 {
		w.t.Errorf("the writer was closed while %d writes were running", w.writing)
	}
	w.closed = true
	w.unstick() // a closed writer's calls fail at once
	return nil
}

func (w *stuckWriter) unstick() { w.once.Do(func() { close(w.unstuck) }) }

// TestAStuckWriteEndsBeforeTheWriterCloses: storage keeps failing and then hangs in a
// write; a stop gives up on the stuck delivery after the short drain timeout (it is read
// again, not committed), but the writer is closed only after that write has returned,
// and no write follows.
func TestAStuckWriteEndsBeforeTheWriterCloses(t *testing.T) {
	const topic, group = "spans", "stuck-at-close"
	b := kafkatest.Start(t, topic, 1)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 10, 1)...)
	w := newStuckWriter(t)
	cfg := testConfig(b.Addr, topic, group)
	fastRetries(&cfg)
	cfg.DrainTimeout = config.Duration(200 * time.Millisecond)
	r := startIngester(t, cfg, w)
	select {
	case <-w.stuck:
	case <-time.After(30 * time.Second):
		t.Fatal("no write got stuck")
	}
	if code, body := r.readyz(t); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d while storage fails: %s", code, body)
	}

	stop := r.cancel
	r.cancel = nil
	stop() // as SIGTERM does
	// Once the member has left the group only the chain's close and the writer's are left
	// to Run; the stuck write is still running.
	waitFor(t, 30*time.Second, "the ingester to leave the group", func() bool { return groupMembers(t, b, group) == 0 })
	w.unstick()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("ingester did not stop cleanly: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the ingester did not stop once the write returned")
	}
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if !closed {
		t.Error("the writer was never closed")
	}
	if c := b.CommittedOffsets(t, group, topic, 1)[0]; c > 0 {
		t.Errorf("committed offset %d passes the delivery that was never written", c)
	}
}

// groupMembers returns the number of members of group, as the broker sees it.
func groupMembers(t *testing.T, b *kafkatest.Broker, group string) int {
	t.Helper()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(b.Addr), Timeout: 10 * time.Second, Transport: transport}
	resp, err := client.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		t.Fatalf("describing group %s: %v", group, err)
	}
	if len(resp.Groups) != 1 || resp.Groups[0].Error != nil {
		t.Fatalf("describing group %s: %+v", group, resp.Groups)
	}
	return len(resp.Groups[0].Members)
}

func mustIndex(t *testing.T, b *kafkatest.Broker, topic string) spanIndex {
	idx, _ := indexTopic(t, b, topic, partitions)
	return idx
}
