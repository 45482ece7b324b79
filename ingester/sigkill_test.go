package ingester_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/store"
	"github.com/spanflow/spanflow/internal/kafkatest"
	"github.com/spanflow/spanflow/internal/testproc"
)

// TestMain lets this test binary also be spanflow or kfake in a child process, and fails
// the package's tests if any goroutine outlives them.
func TestMain(m *testing.M) {
	testproc.Dispatch()
	goleak.VerifyTestMain(m)
}

// startProcess runs `spanflow ingest --config=path` as a child process.
func startProcess(t *testing.T, configPath string) *exec.Cmd {
	t.Helper()
	return testproc.Start(t, testproc.Spanflow, nil, nil, "ingest", "--config="+configPath)
}

// storedSpans counts the distinct spans in a file store and how many were written twice.
func storedSpans(t *testing.T, dir string) (distinct, duplicates int) {
	t.Helper()
	distinct, duplicates, err := store.CountFiles(dir)
	if err != nil {
		t.Fatalf("reading the file store: %v", err)
	}
	return distinct, duplicates
}

// maxDuplicatesPerKill bounds the spans written again after a SIGKILL at the default
// settings: only what was in flight (deliveries written but not yet committed) is re-read.
const maxDuplicatesPerKill = 10_000

// TestSIGKILLLosesNothing kills `spanflow ingest`, running at its default settings (but for
// fast group timings), with SIGKILL again and again while it works through a backlog and
// more arrives, restarts it each time, and checks that every produced span is in the file
// store, counted by distinct span ID, and that each kill re-wrote little.
func TestSIGKILLLosesNothing(t *testing.T) {
	const topic, group, partitions = "spans", "sigkill", 4
	const kills, spansPer = 5, 2
	// The broker runs in this process, under the race detector in `make test`: a backlog
	// of 8,000 messages keeps it quick. SPANFLOW_SIGKILL_BACKLOG sets a larger one (the
	// README's figures are from 500,000 messages without -race).
	backlog := 8_000
	if n, err := strconv.Atoi(os.Getenv("SPANFLOW_SIGKILL_BACKLOG")); err == nil && n > 0 {
		backlog = n
	}
	b := kafkatest.Start(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, backlog, spansPer)...)

	dir := t.TempDir()
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{b.Addr}
	cfg.Kafka.Topic = topic
	cfg.Kafka.ConsumerGroup = group
	cfg.Kafka.SessionTimeout = config.Duration(time.Second)
	cfg.Kafka.HeartbeatInterval = config.Duration(100 * time.Millisecond)
	cfg.Kafka.MaxWait = config.Duration(100 * time.Millisecond)
	cfg.Storage = config.Storage{Type: config.StorageFile, File: config.FileStorage{Path: filepath.Join(dir, "store"), MaxFileBytes: 4 << 20}}
	cfg.AdminAddress = "127.0.0.1:0"
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(dir, "ingester.yaml")
	if err := os.WriteFile(configPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	committed := func() int64 {
		var n int64
		for _, c := range b.CommittedOffsets(t, group, topic, partitions) {
			n += max(c, 0)
		}
		return n
	}

	produced := backlog
	for kill := range kills {
		proc := startProcess(t, configPath)
		from := committed()
		waitUntil(t, 120*time.Second, "the process to commit a share of the backlog", func() bool {
			return committed() >= min(from+int64(backlog/(2*kills)), int64(produced))
		})
		if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = proc.Wait()
		// More arrives while it is down.
		more := backlog / kills
		b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, uint64(produced), more, spansPer)...)
		produced += more
		t.Logf("kill %d: %d of %d messages committed", kill+1, committed(), produced)
	}

	last := startProcess(t, configPath)
	waitUntil(t, 300*time.Second, "every message committed after the last restart", func() bool {
		return committed() == int64(produced)
	})
	if err := last.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := last.Wait(); err != nil {
		t.Errorf("after SIGTERM the ingester exited with %v, want 0", err)
	}
	total := produced * spansPer
	distinct, dups := storedSpans(t, cfg.Storage.File.Path)
	if distinct != total {
		t.Errorf("%d distinct spans stored of %d produced: %d lost", distinct, total, total-distinct)
	}
	end, offsets := b.EndOffsets(t, topic, partitions), b.CommittedOffsets(t, group, topic, partitions)
	for p := range partitions {
		if offsets[p] != end[p] {
			t.Errorf("partition %d: committed %d after SIGTERM, log end %d", p, offsets[p], end[p])
		}
	}
	if dups > kills*maxDuplicatesPerKill {
		t.Errorf("%d spans written twice after %d kills: %d per kill, more than %d", dups, kills, dups/kills, maxDuplicatesPerKill)
	}
	t.Logf("SIGKILL ×%d: %d spans produced, %d stored, %d lost, %d duplicates (%d per kill, bound %d)",
		kills, total, distinct, total-distinct, dups, dups/kills, maxDuplicatesPerKill)
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
