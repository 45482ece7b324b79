package ingester_test

import (
	"os"
	"os/exec"
	"path/filepath"
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

// TestSIGKILLLosesNothing kills `spanflow ingest` with SIGKILL while it works through a
// backlog, restarts it, and checks that every produced span is in the file store.
func TestSIGKILLLosesNothing(t *testing.T) {
	const topic, group, partitions = "spans", "sigkill", 4
	b := kafkatest.Start(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 3000, 2)...)

	dir := t.TempDir()
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{b.Addr}
	cfg.Kafka.Topic = topic
	cfg.Kafka.ConsumerGroup = group
	cfg.Kafka.SessionTimeout = config.Duration(time.Second)
	cfg.Kafka.HeartbeatInterval = config.Duration(100 * time.Millisecond)
	cfg.Kafka.MaxWait = config.Duration(100 * time.Millisecond)
	cfg.Kafka.CommitInterval = config.Duration(200 * time.Millisecond)
	cfg.Storage = config.Storage{Type: config.StorageFile, File: config.FileStorage{Path: filepath.Join(dir, "store"), MaxFileBytes: 256 << 10}}
	cfg.Parallelism = 50 // small batches, so the kill lands between many writes
	cfg.AdminAddress = "127.0.0.1:0"
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(dir, "ingester.yaml")
	if err := os.WriteFile(configPath, data, 0o600); err != nil {
		t.Fatal(err)
	}

	const total = 4000 * 2
	first := startProcess(t, configPath)
	waitUntil(t, 60*time.Second, "the first process to store spans", func() bool {
		n, _ := storedSpans(t, cfg.Storage.File.Path)
		return n >= 1000
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	killedAt, _ := storedSpans(t, cfg.Storage.File.Path)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 3000, 1000, 2)...)

	second := startProcess(t, configPath)
	waitUntil(t, 90*time.Second, "every span after the restart", func() bool {
		n, _ := storedSpans(t, cfg.Storage.File.Path)
		return n == total
	})
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Errorf("after SIGTERM the ingester exited with %v, want 0", err)
	}
	distinct, dups := storedSpans(t, cfg.Storage.File.Path)
	end, committed := b.EndOffsets(t, topic, partitions), b.CommittedOffsets(t, group, topic, partitions)
	for p := range partitions {
		if committed[p] != end[p] {
			t.Errorf("partition %d: committed %d after SIGTERM, log end %d", p, committed[p], end[p])
		}
	}
	t.Logf("SIGKILL: killed with %d of 6000 spans stored; %d produced, %d stored, %d lost, %d duplicates", killedAt, total, distinct, total-distinct, dups)
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
