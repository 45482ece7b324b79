package ingester_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/segmentio/kafka-go"

	"github.com/spanflow/spanflow/ingester"
	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/store"
)

// benchMessages is the size of the preloaded backlog: about 180 MB of jaeger_proto.
const (
	benchMessages   = 200_000
	benchPartitions = 6
	benchTopic      = "jaeger_spans"
)

// startBrokerProcess runs kfake in a process of its own (this test binary, re-executed),
// preloaded with realistic jaeger_proto spans, and returns its address.
func startBrokerProcess(b *testing.B) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-topic="+benchTopic, "-partitions="+strconv.Itoa(benchPartitions),
		"-preload-jaeger="+strconv.Itoa(benchMessages))
	cmd.Env = append(os.Environ(), runKfakeEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		b.Fatalf("kfake did not start: %q %v", line, err)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "ready "))
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssSampler records the peak resident set size of this process while it runs.
type rssSampler struct {
	peak atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func sampleRSS() *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss := currentRSS(); rss > s.peak.Load() {
				s.peak.Store(rss)
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) finish() int64 {
	close(s.stop)
	<-s.done
	return s.peak.Load()
}

func currentRSS() int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data))
	pages, _ := strconv.ParseInt(fields[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// measurement is one run's cost.
type measurement struct {
	items  int
	wall   time.Duration
	cpu    time.Duration
	allocs uint64
	rss    int64
}

func measure(run func()) measurement {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rss := sampleRSS()
	cpu0, wall0 := cpuTime(), time.Now()
	run()
	m := measurement{wall: time.Since(wall0), cpu: cpuTime() - cpu0, rss: rss.finish()}
	runtime.ReadMemStats(&after)
	m.allocs = after.Mallocs - before.Mallocs
	return m
}

func (m measurement) perCPUSecond() float64 { return float64(m.items) / m.cpu.Seconds() }

// rawGroupRead reads every message of the topic in a fresh consumer group with kafka-go's
// group Reader, committing every 1000 messages, and decodes nothing: the floor any
// kafka-go consumer pays.
func rawGroupRead(b *testing.B, addr, group string) int {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{addr}, Topic: benchTopic, GroupID: group,
		MaxWait: 500 * time.Millisecond, MaxBytes: 10 << 20, StartOffset: kafka.FirstOffset,
	})
	defer r.Close()
	ctx := context.Background()
	batch := make([]kafka.Message, 0, 1000)
	for n := 1; n <= benchMessages; n++ {
		msg, err := r.FetchMessage(ctx)
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, msg)
		if len(batch) == cap(batch) || n == benchMessages {
			if err := r.CommitMessages(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	return benchMessages
}

// ingest runs the ingester at its default settings, to the blackhole writer, until it has
// written every preloaded span.
func ingest(b *testing.B, addr, group string) int {
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{addr}
	cfg.Kafka.Topic = benchTopic
	cfg.Kafka.ConsumerGroup = group
	cfg.Encoding = config.EncodingJaegerProto
	cfg.AdminAddress = "127.0.0.1:0"
	writer := &store.Blackhole{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ingester.Run(ctx, cfg, ingester.Options{Writer: writer}, logr.Discard()) }()
	for writer.Spans() < benchMessages {
		select {
		case err := <-done:
			b.Fatalf("ingester stopped: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return int(writer.Spans())
}

// BenchmarkIngestJaegerProto measures `spanflow ingest` end to end — Kafka consumer group,
// decoding realistic jaeger_proto spans into pdata, the processor chain, commits — against
// a broker in another process, and, in the same run, a raw kafka-go group read of the same
// messages as the baseline. It reports spans per CPU-second of this process (the broker's
// CPU is not counted), the ratio to the baseline, allocations per span and peak RSS.
func BenchmarkIngestJaegerProto(b *testing.B) {
	addr := startBrokerProcess(b)
	rawGroupRead(b, addr, "warmup") // the first read of fresh data is slower; not measured

	var raw, ing measurement
	for i := 0; b.Loop(); i++ {
		r := measure(func() { raw.items += rawGroupRead(b, addr, fmt.Sprintf("baseline-%d", i)) })
		raw.cpu += r.cpu
		raw.wall += r.wall
		m := measure(func() { ing.items += ingest(b, addr, fmt.Sprintf("ingester-%d", i)) })
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
