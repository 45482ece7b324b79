package ingester_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
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
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		removeBuiltBinary()
		os.Exit(code)
	}))
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

// TestSIGKILLLosesNothing kills `spanflow ingest` with SIGKILL again and again while it
// works through a backlog and more arrives, restarts it each time, and checks that every
// produced span is in the file store, counted by distinct span ID, and that each kill
// re-writes no more than the commit design allows.
//
// After a kill the spans stored past the committed offsets are read and written again;
// the test counts them per kill (distinct span IDs), and every duplicate in the store is
// one of them. The consumer commits as soon as a delivery is finished, coalescing the
// finishes while a commit is on its way, so a kill leaves the deliveries in flight
// (parallelism of them) and those finished while the commit covering them was on its
// way: about 2 × parallelism deliveries. One partition is committed apart, with the load
// report in its metadata, through the client, which looks the group coordinator up on
// every request (kafka-go does not keep it): two round trips, beside the others' one,
// and against kfake in this process each now and then takes tens of milliseconds. That
// partition can lag by about one more parallelism of deliveries: 3 × parallelism. A delivery is cut at batchSize spans counted from
// the average spans per message seen so far, which starts at one, so it holds at most
// batchSize messages. Nothing bounds a commit's round trip, though: on two cores shared
// with the broker and the race detector one now and then lasts long enough for several
// deliveries to finish, and a single kill has left 2.1 times the bound (once in about 100
// kills). So the bound holds on average over the kills. The test runs at a small
// parallelism and batch size so that the bound is small next to what a process writes
// between two kills: commits that lag behind the writes (on the commit interval only, or
// at the end) leave several times as much.
func TestSIGKILLLosesNothing(t *testing.T) {
	const topic, group, partitions = "spans", "sigkill", 4
	const kills, spansPer = 5, 2
	// The broker runs in this process, under the race detector in `make test`: a backlog
	// of 8,000 messages keeps it quick. SPANFLOW_SIGKILL_BACKLOG, …_PARALLELISM and
	// …_BATCH_SIZE change the run (the README's figures are from 500,000 messages at the
	// default settings, without -race).
	backlog := envInt("SPANFLOW_SIGKILL_BACKLOG", 8_000)
	b := kafkatest.Start(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, backlog, spansPer)...)

	cfg, configPath := killableConfig(t, b.Addr, topic, group, func(c *config.Config) {
		c.Parallelism = envInt("SPANFLOW_SIGKILL_PARALLELISM", 2)
		c.Processing.BatchSize = envInt("SPANFLOW_SIGKILL_BATCH_SIZE", 200)
	})
	maxRewrittenPerKill := 3 * cfg.Parallelism * cfg.Processing.BatchSize * spansPer
	committed := func() int64 {
		var n int64
		for _, c := range b.CommittedOffsets(t, group, topic, partitions) {
			n += max(c, 0)
		}
		return n
	}

	// Each kill comes when the process has written a share of the backlog to storage, at a
	// moment that has nothing to do with its commits.
	share := int64(backlog/kills) * jsonBytesPerMessage(t, spansPer)
	produced, rewrittenTotal := backlog, 0
	copies := map[store.SpanKey]int{}
	for kill := range kills {
		proc := startProcess(t, configPath)
		from := storeBytes(t, cfg.Storage.File.Path)
		waitUntil(t, 120*time.Second, "the process to write a share of the backlog", func() bool {
			return storeBytes(t, cfg.Storage.File.Path) >= from+share || committed() == int64(produced)
		})
		if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = proc.Wait()
		var rewritten int
		rewritten, copies = rewrittenAfterKill(t, b, cfg.Storage.File.Path, group, topic, partitions, copies)
		rewrittenTotal += rewritten
		t.Logf("kill %d: %d of %d messages committed; %d spans (distinct IDs) stored past the committed offsets are written again",
			kill+1, committed(), produced, rewritten)
		// More arrives while it is down.
		more := backlog / kills
		b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, uint64(produced), more, spansPer)...)
		produced += more
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
	if rewrittenTotal > kills*maxRewrittenPerKill {
		t.Errorf("the kills left %d spans a kill to be written again, more than %d (3 × parallelism %d × batchSize %d × %d spans a message)",
			rewrittenTotal/kills, maxRewrittenPerKill, cfg.Parallelism, cfg.Processing.BatchSize, spansPer)
	}
	// Every duplicate in the store is one a kill left to be written again.
	if dups != rewrittenTotal {
		t.Errorf("%d duplicate writes in the store, but the kills left %d spans to be written again", dups, rewrittenTotal)
	}
	t.Logf("SIGKILL ×%d: %d spans produced, %d stored, %d lost, %d duplicates (%d a kill on average, bound %d a kill)",
		kills, total, distinct, total-distinct, dups, dups/kills, maxRewrittenPerKill)
}

// rewrittenAfterKill counts the spans a kill leaves to be written again: those the killed
// process wrote (the file store holds more copies of them than before, in before) of
// messages at or past the committed offsets, which the next process reads again. It
// counts distinct span IDs, and returns the store's copies of each span now.
func rewrittenAfterKill(t *testing.T, b *kafkatest.Broker, dir, group, topic string, partitions int, before map[store.SpanKey]int) (int, map[store.SpanKey]int) {
	t.Helper()
	copies := map[store.SpanKey]int{}
	if _, err := store.ReadFiles(dir, func(td ptrace.Traces) error {
		for k := range store.SpanKeys(td) {
			copies[k]++
		}
		return nil
	}); err != nil {
		t.Fatalf("reading the file store: %v", err)
	}
	committed := b.CommittedOffsets(t, group, topic, partitions)
	var u ptrace.ProtoUnmarshaler
	n := 0
	for _, msg := range b.ReadAll(t, topic, partitions) {
		if msg.Offset < committed[msg.Partition] {
			continue
		}
		td, err := u.UnmarshalTraces(msg.Value)
		if err != nil {
			t.Fatalf("partition %d offset %d: %v", msg.Partition, msg.Offset, err)
		}
		for k := range store.SpanKeys(td) {
			if copies[k] > before[k] {
				n++
			}
		}
	}
	return n, copies
}

// killableConfig writes the configuration of an ingester that SIGKILL tests kill: a
// file store in a test directory, a short session timeout (a killed member's partitions
// go to the next soon), changed by set. It returns the configuration and its path.
func killableConfig(t *testing.T, broker, topic, group string, set func(*config.Config)) (config.Config, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{broker}
	cfg.Kafka.Topic = topic
	cfg.Kafka.ConsumerGroup = group
	cfg.Kafka.SessionTimeout = config.Duration(time.Second)
	cfg.Kafka.HeartbeatInterval = config.Duration(100 * time.Millisecond)
	cfg.Kafka.MaxWait = config.Duration(100 * time.Millisecond)
	cfg.Storage = config.Storage{Type: config.StorageFile, File: config.FileStorage{Path: filepath.Join(dir, "store"), MaxFileBytes: 4 << 20}}
	cfg.AdminAddress = "127.0.0.1:0"
	set(&cfg)
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ingester.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, path
}

func envInt(name string, fallback int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return fallback
}

// storeBytes is the size of the file store's files.
func storeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}

// jsonBytesPerMessage is about what the file store writes for a message of spansPer spans.
func jsonBytesPerMessage(t *testing.T, spansPer int) int64 {
	var m ptrace.JSONMarshaler
	data, err := m.MarshalTraces(kafkatest.Traces(0, spansPer))
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(data))
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

// TestSIGKILLDuringJointWritesLosesNothing: a live topic of 16 partitions, each getting a
// message now and then, makes deliveries of a few messages that share storage requests
// (joint writes). The ingester is killed three times while messages keep arriving; every
// produced span is stored (distinct span IDs), every offset committed in the end, and the
// store shows requests that held spans of several partitions: the kills came in the
// middle of joint writes, not around them.
func TestSIGKILLDuringJointWritesLosesNothing(t *testing.T) {
	const topic, group, partitions, spansPer = "live", "sigkill-live", 16, 2
	const kills, batches, perBatch = 3, 150, 16
	b := kafkatest.Start(t, topic, partitions)
	msgs := kafkatest.OTLPProtoMessages(t, 0, batches*perBatch, spansPer)

	cfg, configPath := killableConfig(t, b.Addr, topic, group, func(c *config.Config) { c.Parallelism = 4 })

	// The producer: a batch of 16 messages, spread over the partitions by key, every 20 ms.
	var produced atomic.Int64
	producing := make(chan error, 1)
	go func() {
		for i := range batches {
			time.Sleep(20 * time.Millisecond)
			if err := b.TryProduce(topic, msgs[i*perBatch:(i+1)*perBatch]...); err != nil {
				producing <- err
				return
			}
			produced.Add(perBatch)
		}
		producing <- nil
	}()
	committed := func() int64 {
		var n int64
		for _, c := range b.CommittedOffsets(t, group, topic, partitions) {
			n += max(c, 0)
		}
		return n
	}
	for kill := range kills {
		proc := startProcess(t, configPath)
		from := committed()
		waitUntil(t, 60*time.Second, "the process to commit some of the live topic", func() bool {
			return committed() > from+perBatch*5
		})
		if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = proc.Wait()
		t.Logf("kill %d: %d of %d messages committed", kill+1, committed(), produced.Load())
	}
	if err := <-producing; err != nil {
		t.Fatal(err)
	}
	last := startProcess(t, configPath)
	waitUntil(t, 120*time.Second, "every message committed after the last restart", func() bool {
		return committed() == int64(len(msgs))
	})
	if err := last.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := last.Wait(); err != nil {
		t.Errorf("after SIGTERM the ingester exited with %v, want 0", err)
	}
	total := len(msgs) * spansPer
	if distinct, _ := storedSpans(t, cfg.Storage.File.Path); distinct != total {
		t.Errorf("%d distinct spans stored of %d produced: %d lost", distinct, total, total-distinct)
	}
	// Which partition each span came from, and the partitions of each stored request.
	partitionOf := map[store.SpanKey]int{}
	var u ptrace.ProtoUnmarshaler
	for _, msg := range b.ReadAll(t, topic, partitions) {
		td, err := u.UnmarshalTraces(msg.Value)
		if err != nil {
			t.Fatal(err)
		}
		for k := range store.SpanKeys(td) {
			partitionOf[k] = msg.Partition
		}
	}
	joint := 0
	if _, err := store.ReadFiles(cfg.Storage.File.Path, func(td ptrace.Traces) error {
		seen := map[int]bool{}
		for k := range store.SpanKeys(td) {
			seen[partitionOf[k]] = true
		}
		if len(seen) > 1 {
			joint++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if joint == 0 {
		t.Error("no stored request holds spans of more than one partition: the deliveries were not joined")
	}
}
