package ingester

import (
	"context"
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

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
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

// TestIngestsWhatKcatProduced has librdkafka's kcat, an independent Kafka client, produce
// OTLP/JSON spans, one message per line, and checks the ingester reads them all.
func TestIngestsWhatKcatProduced(t *testing.T) {
	kcat := lookKcat(t)
	const topic, group = "otlp_json_spans", "kcat-group"
	b := kafkatest.Start(t, topic, partitions)

	var lines []string
	var m ptrace.JSONMarshaler
	for i := range 50 {
		data, err := m.MarshalTraces(kafkatest.Traces(uint64(i), 4))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(data))
	}
	input := filepath.Join(t.TempDir(), "spans.jsonl")
	if err := os.WriteFile(input, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
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
		`spanflow_ingester_lag_records{partition="0"} 0`,
		"spanflow_ingester_delivery_messages_sum 100",
		`spanflow_ingester_lag_seconds{partition="0"} 0`,
		"spanflow_ingester_topic_missing 0",
		"spanflow_ingester_in_flight_messages 0",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// closeCheckingWriter stores slowly and remembers a Write after Close.
type closeCheckingWriter struct {
	*store.Memory
	mu          sync.Mutex
	closed      bool
	afterClosed bool
}

func (w *closeCheckingWriter) Write(ctx context.Context, td ptrace.Traces) error {
	w.mu.Lock()
	w.afterClosed = w.afterClosed || w.closed
	w.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	return w.Memory.Write(ctx, td)
}

func (w *closeCheckingWriter) Close(context.Context) error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	return nil
}

// TestNothingIsWrittenAfterTheWriterCloses: a stop in the middle of a backlog drains the
// deliveries in flight before the writer is closed, and none is written after.
func TestNothingIsWrittenAfterTheWriterCloses(t *testing.T) {
	const topic, group = "spans", "closing"
	b := kafkatest.Start(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 2000, 1)...)
	w := &closeCheckingWriter{Memory: store.NewMemory()}
	cfg := testConfig(b.Addr, topic, group)
	cfg.Processing.BatchSize = 20 // many small writes
	r := startIngester(t, cfg, w)
	waitFor(t, 30*time.Second, "some spans", func() bool { n, _ := w.Counts(); return n >= 100 })
	r.stop(t)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.afterClosed {
		t.Error("a delivery was written after the writer was closed")
	}
	assertCommitsCovered(t, b.CommittedOffsets(t, group, topic, partitions), mustIndex(t, b, topic), w.Memory)
}

func mustIndex(t *testing.T, b *kafkatest.Broker, topic string) spanIndex {
	idx, _ := indexTopic(t, b, topic, partitions)
	return idx
}
