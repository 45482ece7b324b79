package ingester

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/go-logr/logr/testr"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/otlpwire"
	"github.com/spanflow/spanflow/internal/kafkatest"
)

// gatedWriter holds every write until released and records the most writes at once.
type gatedWriter struct {
	mu       sync.Mutex
	inFlight int
	most     int
	release  chan struct{}
}

func (w *gatedWriter) Write(ctx context.Context, _ otlpwire.Request) error {
	w.mu.Lock()
	w.inFlight++
	w.most = max(w.most, w.inFlight)
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.inFlight--
		w.mu.Unlock()
	}()
	select {
	case <-w.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *gatedWriter) Close(context.Context) error { return nil }

func (w *gatedWriter) writesAtOnce() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inFlight
}

// TestParallelismFollowsTheConfigFile: a new parallelism in the configuration file (the
// operator's ConfigMap, refreshed by the kubelet) is applied while running — more writes
// at once, no restart — and a file that cannot be read leaves it as it is.
func TestParallelismFollowsTheConfigFile(t *testing.T) {
	const topic, group = "otlp_spans", "reload"
	b := kafkatest.Start(t, topic, 8)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 400, 1)...)
	cfg := testConfig(b.Addr, topic, group)
	cfg.Parallelism = 2
	cfg.Processing.BatchSize = 5
	path := filepath.Join(t.TempDir(), "ingester.yaml")
	writeConfig := func(c config.Config) {
		data, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".new", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".new", path); err != nil { // as the kubelet swaps the files
			t.Fatal(err)
		}
	}
	writeConfig(cfg)
	var reloads atomic.Int64
	reload := func() (config.Config, error) {
		defer reloads.Add(1)
		return config.Load(path)
	}

	writer := &gatedWriter{release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	adminAddr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Writer: writer, AdminReady: func(a string) { adminAddr <- a }, Reload: reload,
			ReloadInterval: 50 * time.Millisecond}, testr.New(t))
	}()
	admin := <-adminAddr
	defer func() {
		close(writer.release)
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("ingester: %v", err)
		}
	}()

	waitFor(t, 30*time.Second, "2 writes at once", func() bool { return writer.writesAtOnce() == 2 })
	if v := scrapeValue(t, admin, "spanflow_ingester_parallelism"); v != 2 {
		t.Fatalf("parallelism gauge %v, want 2", v)
	}

	// Unreadable for a while: nothing changes.
	if err := os.WriteFile(path, []byte("parallelism: [not a number"), 0o600); err != nil {
		t.Fatal(err)
	}
	after := reloads.Load()
	waitFor(t, 10*time.Second, "three reads of the unreadable file", func() bool { return reloads.Load() >= after+3 })
	if n := writer.writesAtOnce(); n != 2 {
		t.Fatalf("%d writes at once after an unreadable file, want 2", n)
	}

	cfg.Parallelism = 6
	writeConfig(cfg)
	waitFor(t, 10*time.Second, "6 writes at once", func() bool { return writer.writesAtOnce() == 6 })
	if v := scrapeValue(t, admin, "spanflow_ingester_parallelism"); v != 6 {
		t.Errorf("parallelism gauge %v, want 6", v)
	}
	writer.mu.Lock()
	most := writer.most
	writer.mu.Unlock()
	if most != 6 {
		t.Errorf("at most %d writes at once, want 6", most)
	}
}

// TestOtherChangesAreLoggedOnce: a change the running process cannot apply (the topic)
// is said once, not at every look at the file, and not at all for an unchanged file.
func TestOtherChangesAreLoggedOnce(t *testing.T) {
	running := config.Default()
	running.Kafka.Brokers, running.Kafka.Topic, running.Kafka.ConsumerGroup = []string{"127.0.0.1:9092"}, "spans", "g"
	running.Storage.Type = config.StorageBlackhole
	changed := running
	changed.Kafka.Topic = "other"
	var mu sync.Mutex
	var lines []string
	log := funcr.New(func(_, args string) { mu.Lock(); lines = append(lines, args); mu.Unlock() }, funcr.Options{})
	var reads atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	reload := func() (config.Config, error) {
		n := reads.Add(1)
		if n >= 8 {
			cancel()
		}
		if n <= 3 {
			return running, nil
		}
		return changed, nil
	}
	if err := followParallelism(ctx, reload, time.Millisecond, running, nil, nil, log); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lines) != 1 || !strings.Contains(lines[0], "changed beyond parallelism") {
		t.Errorf("logged %q, want one line saying the configuration changed", lines)
	}
}
