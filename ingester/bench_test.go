package ingester_test

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester"
	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/fetchwire"
	"github.com/spanflow/spanflow/ingester/otlpwire"
	"github.com/spanflow/spanflow/ingester/store"
	"github.com/spanflow/spanflow/internal/kafkatest"
	"github.com/spanflow/spanflow/internal/otlptest"
	"github.com/spanflow/spanflow/internal/testenv"
	"github.com/spanflow/spanflow/internal/testproc"
)

// benchMessages is the size of the preloaded backlog: about 440 MB of jaeger_proto, as
// many spans as the issue that set the goals measured (a process's start is then a small
// part of its CPU).
const (
	benchMessages   = 500_000
	benchPartitions = 6
	benchTopic      = "jaeger_spans"
)

// startBrokerProcess runs kfake in a process of its own, preloaded with realistic
// jaeger_proto spans, and returns its address.
func startBrokerProcess(b *testing.B) string {
	b.Helper()
	return testproc.StartKfake(b, "-topic="+benchTopic, "-partitions="+strconv.Itoa(benchPartitions),
		"-preload-jaeger="+strconv.Itoa(benchMessages))
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measurement is one run's cost.
type measurement struct {
	items  int
	wall   time.Duration
	cpu    time.Duration
	allocs uint64
	rss    int64
	// machine is the whole machine's CPU over the run (every process: the broker, the
	// sink), to tell a consumer waiting for them from one that has the machine to itself.
	machine machineTicks
}

// machineTicks are clock ticks of the machine's CPUs, from /proc/stat: busy (not idle, not
// waiting for I/O) and all.
type machineTicks struct{ busy, all int64 }

func readMachineTicks(b *testing.B) machineTicks {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	var t machineTicks
	for i, field := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseInt(field, 10, 64)
		if i >= 8 { // guest time, already counted in user
			break
		}
		t.all += n
		if i != 3 && i != 4 { // idle, iowait
			t.busy += n
		}
	}
	return t
}

func (t machineTicks) since(start machineTicks) machineTicks {
	return machineTicks{busy: t.busy - start.busy, all: t.all - start.all}
}

// busyShare is the share of the machine's CPU time that was busy.
func (t machineTicks) busyShare() float64 { return float64(t.busy) / float64(max(t.all, 1)) }

// measure runs fn in this process and returns its wall and CPU time.
func measure(run func()) measurement {
	cpu0, wall0 := cpuTime(), time.Now()
	run()
	return measurement{wall: time.Since(wall0), cpu: cpuTime() - cpu0}
}

func (m measurement) perCPUSecond() float64 { return float64(m.items) / m.cpu.Seconds() }

// rawGroupRead reads every message of the jaeger_proto topic in a fresh consumer group
// with kafka-go's group Reader, committing every 1000 messages, and decodes nothing: the
// floor any kafka-go consumer pays.
func rawGroupRead(b *testing.B, addr, group string) int {
	rawGroupReadTopic(b, addr, benchTopic, benchMessages, group)
	return benchMessages
}

// rawGroupReadTopic is rawGroupRead on a topic of the given number of messages.
func rawGroupReadTopic(b *testing.B, addr, topic string, messages int, group string) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{addr}, Topic: topic, GroupID: group,
		MaxWait: 500 * time.Millisecond, MaxBytes: 10 << 20, StartOffset: kafka.FirstOffset,
	})
	defer r.Close()
	ctx := context.Background()
	batch := make([]kafka.Message, 0, 1000)
	for n := 1; n <= messages; n++ {
		msg, err := r.FetchMessage(ctx)
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, msg)
		if len(batch) == cap(batch) || n == messages {
			if err := r.CommitMessages(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

var builtBinary struct {
	once sync.Once
	path string
	err  error
}

// spanflowBinary builds the spanflow binary as `make build` does (static, trimmed) once
// per benchmark process and returns its path: the ingester is measured as users run it,
// not as the test binary, which carries the tests' dependencies (5 MB more resident).
func spanflowBinary(b *testing.B) string {
	if p := os.Getenv("SPANFLOW_BENCH_BINARY"); p != "" { // another build, to compare with (copy both fresh)
		return p
	}
	builtBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "spanflow-bench-")
		if err != nil {
			builtBinary.err = err
			return
		}
		builtBinary.path = filepath.Join(dir, "spanflow")
		build := exec.Command("go", "build", "-trimpath", "-o", builtBinary.path, "github.com/spanflow/spanflow")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			builtBinary.err = fmt.Errorf("building spanflow: %v\n%s", err, out)
		}
	})
	if builtBinary.err != nil {
		b.Fatal(builtBinary.err)
	}
	return builtBinary.path
}

// removeBuiltBinary deletes what spanflowBinary built, if anything.
func removeBuiltBinary() {
	if builtBinary.path != "" {
		_ = os.RemoveAll(filepath.Dir(builtBinary.path))
	}
}

// ingestProcess runs `spanflow ingest` as a process of its own at its default settings, on
// the jaeger_proto topic to the blackhole writer (or as the options set), until it has
// committed the topic's messages (benchMessages unless said). It returns its cost from
// /proc (CPU time, peak RSS as VmHWM) and its /metrics (spans written, allocations).
func ingestProcess(b *testing.B, addr, group string, options ...func(*config.Config)) measurement {
	return ingestMessages(b, addr, group, benchMessages, options...)
}

func ingestMessages(b *testing.B, addr, group string, total int, options ...func(*config.Config)) measurement {
	return ingestWithEnv(b, addr, group, total, nil, options...)
}

// benchConfig is the ingester's configuration for a benchmark: jaeger_proto from the
// bench topic into the blackhole, changed by options, in group on the broker at addr.
func benchConfig(b *testing.B, addr, group string, options ...func(*config.Config)) config.Config {
	cfg := config.Default()
	cfg.Kafka.Topic = benchTopic
	cfg.Encoding = config.EncodingJaegerProto
	cfg.Storage.Type = config.StorageBlackhole
	for _, set := range options {
		set(&cfg)
	}
	cfg.Kafka.Brokers = []string{addr}
	cfg.Kafka.ConsumerGroup = group
	cfg.AdminAddress = testenv.FreeAddr(b)
	cfg.Profiling = os.Getenv("BENCH_CPUPROFILE") != "" || os.Getenv("BENCH_ALLOCPROFILE") != ""
	return cfg
}

// startIngester starts `spanflow ingest` with cfg and env as a process of its own; the
// caller stops it (SIGTERM, Wait).
func startIngester(b *testing.B, cfg config.Config, env []string) *exec.Cmd {
	data, err := cfg.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "ingester.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(spanflowBinary(b), "ingest", "--config="+path, "--zap-log-level=error")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return cmd
}

// ingestWithEnv is ingestMessages with env added to the ingester's environment.
func ingestWithEnv(b *testing.B, addr, group string, total int, env []string, options ...func(*config.Config)) measurement {
	cfg := benchConfig(b, addr, group, options...)
	broker := kafkatest.Attach(b, addr)
	partitions := topicPartitions(b, addr, cfg.Kafka.Topic)
	spanflowBinary(b) // built before the clock starts
	start, machine := time.Now(), readMachineTicks(b)
	cmd := startIngester(b, cfg, env)
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	// Progress is watched as Jaeger's is, from the offsets the group committed (polling the
	// ingester's /metrics would cost it CPU of its own); its metrics are read at the end.
	profiling := false
	for {
		committed := int64(0)
		for _, offset := range broker.CommittedOffsets(b, group, cfg.Kafka.Topic, partitions) {
			committed += max(offset, 0)
		}
		// BENCH_CPUPROFILE=FILE saves a CPU profile of the ingester process's run, of its
		// first second (BENCH_CPUPROFILE_SECONDS=N: N seconds).
		if path := os.Getenv("BENCH_CPUPROFILE"); path != "" && committed > 0 && !profiling {
			profiling = true
			go saveProfile(b, cfg.AdminAddress, path)
		}
		if committed >= int64(total) {
			// BENCH_ALLOCPROFILE=FILE saves the ingester's allocations (sampled) over its run.
			if path := os.Getenv("BENCH_ALLOCPROFILE"); path != "" {
				saveFrom(b, cfg.AdminAddress, "/debug/pprof/allocs", path)
			}
			metrics := scrape(b, cfg.AdminAddress)
			return measurement{
				items:   int(metrics["spanflow_ingester_spans_written_total"]),
				wall:    time.Since(start),
				cpu:     processCPU(b, cmd.Process.Pid),
				allocs:  uint64(metrics["go_memstats_mallocs_total"]),
				rss:     peakRSS(b, cmd.Process.Pid),
				machine: readMachineTicks(b).since(machine),
			}
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("ingester committed %d of %d messages in 5 minutes", committed, total)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func saveProfile(b *testing.B, addr, path string) {
	saveFrom(b, addr, "/debug/pprof/profile?seconds="+cmp.Or(os.Getenv("BENCH_CPUPROFILE_SECONDS"), "1"), path)
}

// saveFrom saves what the ingester's admin endpoint serves at urlPath into path.
func saveFrom(b *testing.B, addr, urlPath, path string) {
	resp, err := http.Get("http://" + addr + urlPath)
	if err != nil {
		b.Log(err)
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Log(err)
	}
}

// scrape reads the unlabelled samples of a Prometheus endpoint.
func scrape(b *testing.B, addr string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return out // not listening yet
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			out[name] = v
		}
	}
	return out
}

// peakRSS is the high-water mark of a process's resident set (VmHWM).
func peakRSS(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkIngestJaegerProto measures `spanflow ingest`, run as a process at its default
// settings, end to end — Kafka consumer group, decoding realistic jaeger_proto spans into
// pdata, the processor chain, commits — against kfake in a process of its own, and, in the
// same run, a raw kafka-go group read of the same messages in this process as the
// baseline. It reports spans per CPU-second of the ingester process (the broker's CPU is
// not counted), the ratio to the baseline, allocations per span and peak RSS.
func BenchmarkIngestJaegerProto(b *testing.B) {
	addr := startBrokerProcess(b)
	rawGroupRead(b, addr, "warmup") // the first read of fresh data is slower; not measured

	var raw, ing measurement
	for i := 0; b.Loop(); i++ {
		r := measure(func() { raw.items += rawGroupRead(b, addr, fmt.Sprintf("baseline-%d", i)) })
		raw.cpu += r.cpu
		raw.wall += r.wall
		m := ingestProcess(b, addr, fmt.Sprintf("ingester-%d", i))
		ing.items += m.items
		ing.cpu += m.cpu
		ing.wall += m.wall
		ing.allocs += m.allocs
		ing.rss = max(ing.rss, m.rss)
	}
	b.ReportMetric(ing.perCPUSecond(), "spans/cpu-s")
	b.ReportMetric(float64(ing.items)/ing.wall.Seconds(), "spans/s")
	b.ReportMetric(raw.perCPUSecond(), "baseline-msgs/cpu-s")
	b.ReportMetric(ing.perCPUSecond()/raw.perCPUSecond(), "ratio-to-baseline")
	b.ReportMetric(float64(ing.allocs)/float64(ing.items), "allocs/span")
	b.ReportMetric(float64(ing.rss)/(1<<20), "peak-rss-MB")
}

// BenchmarkIngestOTLPWriter measures `spanflow ingest` end to end with the otlp writer
// (OTLP/gRPC, gzip, to a sink in this process that accepts everything) next to the
// blackhole writer, on the same preloaded jaeger_proto messages in the same run: spans per
// second and per CPU-second of the ingester process for each, and their ratio.
func BenchmarkIngestOTLPWriter(b *testing.B) {
	addr := startBrokerProcess(b)
	rawGroupRead(b, addr, "warmup")
	sink := otlptest.StartCounting(b)

	var blackhole, otlp measurement
	add := func(into *measurement, m measurement) {
		into.items += m.items
		into.cpu += m.cpu
		into.wall += m.wall
	}
	for i := 0; b.Loop(); i++ {
		add(&blackhole, ingestProcess(b, addr, fmt.Sprintf("blackhole-%d", i)))
		add(&otlp, ingestProcess(b, addr, fmt.Sprintf("otlp-%d", i), toOTLP(sink.Addr, config.CompressionGzip)))
	}
	b.ReportMetric(blackhole.perCPUSecond(), "blackhole-spans/cpu-s")
	b.ReportMetric(float64(blackhole.items)/blackhole.wall.Seconds(), "blackhole-spans/s")
	b.ReportMetric(otlp.perCPUSecond(), "otlp-spans/cpu-s")
	b.ReportMetric(float64(otlp.items)/otlp.wall.Seconds(), "otlp-spans/s")
	b.ReportMetric(otlp.perCPUSecond()/blackhole.perCPUSecond(), "otlp-to-blackhole-cpu-ratio")
	b.ReportMetric(blackhole.cpu.Seconds()/blackhole.wall.Seconds(), "blackhole-cores")
	b.ReportMetric(otlp.cpu.Seconds()/otlp.wall.Seconds(), "otlp-cores")
}

// toOTLP sets the otlp writer (gRPC, to addr, with compression).
func toOTLP(addr, compression string) func(*config.Config) {
	return func(c *config.Config) {
		c.Storage.Type = config.StorageOTLP
		c.Storage.OTLP = config.OTLPStorage{Endpoint: addr, Protocol: config.OTLPProtocolGRPC, Insecure: true,
			Compression: compression, Timeout: config.Duration(10 * time.Second)}
	}
}

// oneSpan is the trivial decoder of BenchmarkChainOverhead: every message is one span.
type oneSpan struct{}

var oneSpanRequest = func() otlpwire.Request {
	td := ptrace.NewTraces()
	td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	return otlpwire.RequestOf(td)
}()

func (oneSpan) Decode(b *otlpwire.Batch, _ []byte) (int, error) {
	b.AppendRequest(oneSpanRequest.Pieces[0], 1)
	return 1, nil
}

// rawPartitionRead reads every message of the topic as the ingester's fetchers do, one
// connection a partition, fetching and parsing the record batches (fetchwire), and does
// nothing with them: what reading costs before any delivery is cut.
func rawPartitionRead(b *testing.B, addr string) int {
	var wg sync.WaitGroup
	end := kafkatest.Attach(b, addr).EndOffsets(b, benchTopic, benchPartitions)
	for p := range benchPartitions {
		wg.Go(func() {
			ctx := context.Background()
			conn, err := (&fetchwire.Dialer{}).Dial(ctx, addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer conn.Close()
			var buffer, scratch []byte
			for offset := int64(0); offset < end[p]; {
				res, err := conn.Fetch(ctx, fetchwire.FetchRequest{Topic: benchTopic, Partition: p, Offset: offset,
					MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 500 * time.Millisecond}, func() []byte { return buffer })
				if err == nil {
					err = res.Error
				}
				if err != nil {
					b.Error(err)
					return
				}
				buffer = res.Buffer
				if offset, scratch, err = fetchwire.ParseRecords(res.Records, offset, nil, scratch[:0], func(*fetchwire.Record) {}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return benchMessages
}

// BenchmarkChainOverhead measures what the ingester costs per message beyond reading it:
// the consumer group, cutting deliveries, the processor chain and commits. In one run and
// one process: the raw per-partition read of the same messages (fetched and parsed as the
// ingester's fetchers do), the trivial decoder alone, and the ingester (in this process, at its defaults, with that decoder and
// the blackhole); the chain's own cost is the ingester's CPU less the other two.
func BenchmarkChainOverhead(b *testing.B) {
	addr := startBrokerProcess(b)
	rawPartitionRead(b, addr) // the first read of fresh data is slower; not measured
	var raw, decode, ing time.Duration
	for i := 0; b.Loop(); i++ {
		raw += measure(func() { rawPartitionRead(b, addr) }).cpu
		decode += measure(func() {
			var batch otlpwire.Batch
			for range benchMessages {
				if batch.Spans() >= 1000 {
					batch.Reset()
				}
				_, _ = oneSpan{}.Decode(&batch, nil)
			}
		}).cpu
		ing += measure(func() {
			cfg := config.Default()
			cfg.Kafka.Brokers = []string{addr}
			cfg.Kafka.Topic = benchTopic
			cfg.Kafka.ConsumerGroup = fmt.Sprintf("overhead-%d", i)
			cfg.AdminAddress = "127.0.0.1:0"
			cfg.Storage.Type = config.StorageBlackhole
			writer := &store.Blackhole{}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- ingester.Run(ctx, cfg, ingester.Options{Writer: writer, Decoder: oneSpan{}}, logr.Discard())
			}()
			for writer.Spans() < benchMessages {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}).cpu
	}
	perMessage := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N*benchMessages) }
	b.ReportMetric(perMessage(raw), "raw-read-ns/msg")
	b.ReportMetric(perMessage(decode), "decoder-ns/msg")
	b.ReportMetric(perMessage(ing), "ingester-ns/msg")
	b.ReportMetric(perMessage(ing-raw-decode), "chain-ns/msg")
}

// backlogMessages is the backlog BenchmarkBacklogMemory reads: ten times the other
// benchmarks' topic, about 1.8 GB of jaeger_proto.
const backlogMessages = 2_000_000

// BenchmarkBacklogMemory reads a backlog of 2M messages to the blackhole and reports the
// ingester's peak RSS beside the bound the README documents for its settings (memoryBound):
// once at the defaults without a memory limit, once with the Go memory limit a container
// limit of that bound gives it (80%).
func BenchmarkBacklogMemory(b *testing.B) {
	addr := testproc.StartKfake(b, "-topic="+benchTopic, "-partitions="+strconv.Itoa(benchPartitions),
		"-preload-jaeger="+strconv.Itoa(backlogMessages))
	cfg := config.Default()
	bound := memoryBound(cfg, benchPartitions)
	for i := 0; b.Loop(); i++ {
		free := ingestWithEnv(b, addr, fmt.Sprintf("backlog-%d", i), backlogMessages, nil)
		limited := ingestWithEnv(b, addr, fmt.Sprintf("backlog-limited-%d", i), backlogMessages,
			[]string{fmt.Sprintf("GOMEMLIMIT=%d", bound/10*8)})
		b.ReportMetric(float64(free.rss)/(1<<20), "peak-rss-MB")
		b.ReportMetric(float64(limited.rss)/(1<<20), "peak-rss-limited-MB")
		b.ReportMetric(limited.perCPUSecond(), "limited-spans/cpu-s")
		b.ReportMetric(free.perCPUSecond(), "spans/cpu-s")
	}
	b.ReportMetric(float64(bound)/(1<<20), "bound-MB")
}

// memoryBound is the README's bound of an ingester's memory: the message bytes in flight
// and the requests built from them (2.5 × maxInFlightBytes), a fetch being read and one
// queued a partition (2 × maxBytes, or less: the partitions' responses share
// maxInFlightBytes, each asking for at least 128 KiB), and 40 MB of runtime, metrics and
// clients.
func memoryBound(cfg config.Config, partitions int) int64 {
	fetched := min(int64(partitions)*2*int64(cfg.Kafka.MaxBytes), max(cfg.MaxInFlightBytes, int64(partitions)*2*128<<10))
	return cfg.MaxInFlightBytes*5/2 + fetched + 40<<20
}

// manyPartitions is the topic of BenchmarkBacklogMemoryManyPartitions: a pod holding 96
// partitions, where their responses rather than the deliveries set the memory.
const manyPartitions = 96

// BenchmarkBacklogMemoryManyPartitions is BenchmarkBacklogMemory on 96 partitions and a
// backlog of 500,000 messages, without a memory limit.
func BenchmarkBacklogMemoryManyPartitions(b *testing.B) {
	const messages = 500_000
	addr := testproc.StartKfake(b, "-topic="+benchTopic, "-partitions="+strconv.Itoa(manyPartitions),
		"-preload-jaeger="+strconv.Itoa(messages))
	for i := 0; b.Loop(); i++ {
		m := ingestWithEnv(b, addr, fmt.Sprintf("backlog-many-%d", i), messages, nil)
		b.ReportMetric(float64(m.rss)/(1<<20), "peak-rss-MB")
		b.ReportMetric(m.perCPUSecond(), "spans/cpu-s")
	}
	b.ReportMetric(float64(memoryBound(config.Default(), manyPartitions))/(1<<20), "bound-MB")
}

// topicPartitions is how many partitions topic has.
func topicPartitions(b *testing.B, addr, topic string) int {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(addr), Transport: transport, Timeout: 10 * time.Second}
	meta, err := client.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range meta.Topics {
		if t.Name == topic && t.Error == nil {
			return len(t.Partitions)
		}
	}
	b.Fatalf("no topic %s", topic)
	return 0
}
