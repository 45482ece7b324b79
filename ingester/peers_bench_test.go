package ingester_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/internal/jaegertest"
	"github.com/spanflow/spanflow/internal/kafkatest"
	"github.com/spanflow/spanflow/internal/otlptest"
	"github.com/spanflow/spanflow/internal/testproc"
)

const (
	peersOTLPTopic    = "otlp_spans"
	peersOTLPMessages = benchMessages / 5 // about as many spans as the jaeger_proto topic
)

// BenchmarkPeers runs spanflow and Jaeger v2's Kafka receiver (bin/tools/jaeger, the
// OpenTelemetry Collector's receiver inside) on the same preloaded topics in the same run,
// each a process of its own beside kfake: jaeger_proto (one span a message) and otlp_proto
// (one trace of 3–7 spans a message, as the Collector's Kafka exporter writes), each into
// nothing (spanflow's blackhole, Jaeger's nop exporter) and over OTLP/gRPC with gzip to a
// sink in this process (Jaeger through its batch processor); spanflow also with zstd and
// with gzip at level 1. A raw kafka-go group read of
// each topic in this process is the baseline. For each it reports spans per CPU-second of
// the consuming process, the ratio to Jaeger's, cores used while consuming, spans per
// second of wall time with the share of the whole machine's CPU that was busy meanwhile
// (the broker and the sink take the rest), and peak RSS.
func BenchmarkPeers(b *testing.B) {
	addr := testproc.StartKfake(b, "-topic="+benchTopic, "-partitions="+strconv.Itoa(benchPartitions),
		"-preload-jaeger="+strconv.Itoa(benchMessages), "-otlp-topic="+peersOTLPTopic,
		"-preload-otlp="+strconv.Itoa(peersOTLPMessages))
	broker := kafkatest.Attach(b, addr)
	sink := otlptest.StartCounting(b)
	topics := []struct {
		name, topic, encoding string
		messages              int
	}{
		{"jaeger_proto", benchTopic, config.EncodingJaegerProto, benchMessages},
		{"otlp_proto", peersOTLPTopic, config.EncodingOTLPProto, peersOTLPMessages},
	}
	for _, t := range topics {
		rawGroupReadTopic(b, addr, t.topic, t.messages, "warmup-"+t.name)
	}
	results := map[string]*measurement{}
	add := func(key string, m measurement) {
		r := results[key]
		if r == nil {
			r = &measurement{}
			results[key] = r
		}
		r.items += m.items
		r.cpu += m.cpu
		r.wall += m.wall
		r.allocs += m.allocs
		r.rss = max(r.rss, m.rss)
		r.machine.busy += m.machine.busy
		r.machine.all += m.machine.all
	}
	for i := 0; b.Loop(); i++ {
		for _, t := range topics {
			raw := measure(func() { rawGroupReadTopic(b, addr, t.topic, t.messages, fmt.Sprintf("raw-%s-%d", t.name, i)) })
			raw.items = t.messages
			add(t.name+"/raw", raw)
			onTopic := func(c *config.Config) { c.Kafka.Topic, c.Encoding = t.topic, t.encoding }
			blackhole := ingestMessages(b, addr, fmt.Sprintf("spanflow-%s-blackhole-%d", t.name, i), t.messages, onTopic)
			add(t.name+"/spanflow/blackhole", blackhole)
			add(t.name+"/spanflow/otlp-gzip", ingestMessages(b, addr, fmt.Sprintf("spanflow-%s-otlp-%d", t.name, i), t.messages,
				onTopic, toOTLP(sink.Addr, config.CompressionGzip)))
			add(t.name+"/spanflow/otlp-zstd", ingestMessages(b, addr, fmt.Sprintf("spanflow-%s-zstd-%d", t.name, i), t.messages,
				onTopic, toOTLP(sink.Addr, config.CompressionZstd)))
			add(t.name+"/spanflow/otlp-gzip1", ingestMessages(b, addr, fmt.Sprintf("spanflow-%s-gzip1-%d", t.name, i), t.messages,
				onTopic, toOTLP(sink.Addr, config.CompressionGzip), func(c *config.Config) { c.Storage.OTLP.CompressionLevel = 1 }))
			spans := blackhole.items
			add(t.name+"/jaeger/nop", jaegerConsume(b, broker, addr, t.topic, t.encoding, fmt.Sprintf("jaeger-%s-nop-%d", t.name, i), spans, nil))
			add(t.name+"/jaeger/otlp-gzip", jaegerConsume(b, broker, addr, t.topic, t.encoding, fmt.Sprintf("jaeger-%s-otlp-%d", t.name, i), spans, sink))
		}
	}
	for _, t := range topics {
		raw := results[t.name+"/raw"]
		b.ReportMetric(raw.perCPUSecond(), t.name+"-raw-msgs/cpu-s")
		for _, path := range []string{"blackhole", "otlp-gzip", "otlp-zstd", "otlp-gzip1"} {
			r := results[t.name+"/spanflow/"+path]
			name := t.name + "-spanflow-" + path
			b.ReportMetric(r.perCPUSecond(), name+"-spans/cpu-s")
			b.ReportMetric(r.cpu.Seconds()/r.wall.Seconds(), name+"-cores")
			b.ReportMetric(float64(r.items)/r.wall.Seconds(), name+"-wall-spans/s")
			b.ReportMetric(r.machine.busyShare(), name+"-machine-busy")
			b.ReportMetric(float64(r.rss)/(1<<20), name+"-peak-rss-MB")
			b.ReportMetric(float64(r.allocs)/float64(r.items), name+"-allocs/span")
		}
		for _, path := range []string{"nop", "otlp-gzip"} {
			r := results[t.name+"/jaeger/"+path]
			name := t.name + "-jaeger-" + path
			b.ReportMetric(r.perCPUSecond(), name+"-spans/cpu-s")
			b.ReportMetric(r.cpu.Seconds()/r.wall.Seconds(), name+"-cores")
			b.ReportMetric(float64(r.items)/r.wall.Seconds(), name+"-wall-spans/s")
			b.ReportMetric(r.machine.busyShare(), name+"-machine-busy")
			b.ReportMetric(float64(r.rss)/(1<<20), name+"-peak-rss-MB")
		}
		nop, blackhole := results[t.name+"/jaeger/nop"], results[t.name+"/spanflow/blackhole"]
		b.ReportMetric(blackhole.perCPUSecond()/nop.perCPUSecond(), t.name+"-blackhole-x-jaeger")
		b.ReportMetric(blackhole.perCPUSecond()/raw.perCPUSecond(), t.name+"-blackhole-spans-per-raw-msg")
		otlp, jotlp := results[t.name+"/spanflow/otlp-gzip"], results[t.name+"/jaeger/otlp-gzip"]
		b.ReportMetric(otlp.perCPUSecond()/jotlp.perCPUSecond(), t.name+"-otlp-gzip-x-jaeger")
	}
}

// jaegerConsume runs Jaeger v2 reading topic until its consumer group has committed every
// message and, when it exports to sink, the sink has received spans more spans. It
// returns the Jaeger process's CPU time, wall time from start, and peak RSS.
func jaegerConsume(b *testing.B, broker *kafkatest.Broker, addr, topic, encoding, group string, spans int, sink *otlptest.Sink) measurement {
	endpoint, before := "", 0
	if sink != nil {
		endpoint, before = sink.Addr, sink.Spans()
	}
	end := broker.EndOffsets(b, topic, benchPartitions)
	start, machine := time.Now(), readMachineTicks(b)
	cmd := jaegertest.StartKafkaConsumer(b, addr, topic, encoding, group, endpoint)
	for {
		committed := broker.CommittedOffsets(b, group, topic, benchPartitions)
		done := true
		for p, offset := range end {
			if committed[p] < offset {
				done = false
			}
		}
		if done && (sink == nil || sink.Spans()-before >= spans) {
			m := measurement{items: spans, wall: time.Since(start), cpu: processCPU(b, cmd.Process.Pid), rss: peakRSS(b, cmd.Process.Pid),
				machine: readMachineTicks(b).since(machine)}
			_ = cmd.Process.Signal(syscall.SIGTERM) // idle, it would still take CPU from the next run
			_ = cmd.Wait()
			return m
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("Jaeger did not consume %s in 5 minutes (committed %v of %v)", topic, committed, end)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processCPU is the CPU time a process has used, from /proc (in clock ticks of 10 ms).
func processCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name, which is in parentheses and may hold spaces.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// BenchmarkPeersJSON is BenchmarkPeers' otlp_proto topic written in OTLP/JSON instead, the
// Collector's Kafka exporter's other encoding, read into nothing: spanflow transcodes it,
// Jaeger v2 reads it with pdata's JSON unmarshaler. It reports spans per CPU-second of
// each, their ratio, peak RSS, and a raw group read of the topic as the baseline.
func BenchmarkPeersJSON(b *testing.B) {
	const topic = "otlp_json_spans"
	addr := testproc.StartKfake(b, "-partitions="+strconv.Itoa(benchPartitions), "-otlp-json-topic="+topic,
		"-preload-otlp-json="+strconv.Itoa(peersOTLPMessages))
	broker := kafkatest.Attach(b, addr)
	rawGroupReadTopic(b, addr, topic, peersOTLPMessages, "warmup")
	var raw, spanflow, jaeger measurement
	sum := func(into *measurement, m measurement) {
		into.items += m.items
		into.cpu += m.cpu
		into.rss = max(into.rss, m.rss)
	}
	onTopic := func(c *config.Config) { c.Kafka.Topic, c.Encoding = topic, config.EncodingOTLPJSON }
	for i := 0; b.Loop(); i++ {
		r := measure(func() { rawGroupReadTopic(b, addr, topic, peersOTLPMessages, fmt.Sprintf("raw-%d", i)) })
		r.items = peersOTLPMessages
		sum(&raw, r)
		s := ingestMessages(b, addr, fmt.Sprintf("spanflow-%d", i), peersOTLPMessages, onTopic)
		sum(&spanflow, s)
		sum(&jaeger, jaegerConsume(b, broker, addr, topic, config.EncodingOTLPJSON, fmt.Sprintf("jaeger-%d", i), s.items, nil))
	}
	b.ReportMetric(raw.perCPUSecond(), "otlp_json-raw-msgs/cpu-s")
	b.ReportMetric(spanflow.perCPUSecond(), "otlp_json-spanflow-blackhole-spans/cpu-s")
	b.ReportMetric(jaeger.perCPUSecond(), "otlp_json-jaeger-nop-spans/cpu-s")
	b.ReportMetric(spanflow.perCPUSecond()/jaeger.perCPUSecond(), "otlp_json-blackhole-x-jaeger")
	b.ReportMetric(float64(spanflow.rss)/(1<<20), "otlp_json-spanflow-peak-rss-MB")
	b.ReportMetric(float64(jaeger.rss)/(1<<20), "otlp_json-jaeger-peak-rss-MB")
}

// BenchmarkLiveTopic: a live topic of many partitions at a modest rate — what most
// production topics are between bursts, where the preloaded backlogs above are what a
// topic is after an outage — read by spanflow and Jaeger v2 at once, each exporting
// over OTLP/gRPC with gzip to a sink of its own. kfake produces 1,000 otlp_proto traces
// (about 5,000 spans) a second over 96 partitions, 10 or so a partition a second. Each
// iteration measures a 20 s window once both keep up: spans per CPU-second of each
// process, their ratio, and the requests each sends (a second and spans a request):
// storage pays per request too.
func BenchmarkLiveTopic(b *testing.B) {
	const partitions, tracesPerSecond = 96, 1000
	window := 20 * time.Second
	addr := testproc.StartKfake(b, "-partitions="+strconv.Itoa(partitions), "-otlp-topic="+peersOTLPTopic,
		"-produce-otlp="+strconv.Itoa(tracesPerSecond))
	spanflowSink, jaegerSink := otlptest.StartCounting(b), otlptest.StartCounting(b)
	cfg := benchConfig(b, addr, "live-spanflow", toOTLP(spanflowSink.Addr, config.CompressionGzip),
		func(c *config.Config) { c.Kafka.Topic, c.Encoding = peersOTLPTopic, config.EncodingOTLPProto })
	spanflow := startIngester(b, cfg, nil)
	defer func() {
		_ = spanflow.Process.Signal(syscall.SIGTERM)
		_ = spanflow.Wait()
	}()
	jaeger := jaegertest.StartKafkaConsumer(b, addr, peersOTLPTopic, config.EncodingOTLPProto, "live-jaeger", jaegerSink.Addr)
	time.Sleep(15 * time.Second) // both joined and caught up with what was produced meanwhile
	type reading struct {
		cpu             time.Duration
		spans, requests int
	}
	read := func(pid int, sink *otlptest.Sink) reading {
		return reading{processCPU(b, pid), sink.Spans(), sink.Requests()}
	}
	var sf, jg reading // summed over the windows
	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
		go saveProfile(b, cfg.AdminAddress, path) // of the first window (BENCH_CPUPROFILE_SECONDS)
	}
	for b.Loop() {
		sf0, jg0 := read(spanflow.Process.Pid, spanflowSink), read(jaeger.Process.Pid, jaegerSink)
		time.Sleep(window)
		sf1, jg1 := read(spanflow.Process.Pid, spanflowSink), read(jaeger.Process.Pid, jaegerSink)
		sf.cpu, sf.spans, sf.requests = sf.cpu+sf1.cpu-sf0.cpu, sf.spans+sf1.spans-sf0.spans, sf.requests+sf1.requests-sf0.requests
		jg.cpu, jg.spans, jg.requests = jg.cpu+jg1.cpu-jg0.cpu, jg.spans+jg1.spans-jg0.spans, jg.requests+jg1.requests-jg0.requests
	}
	seconds := window.Seconds() * float64(b.N)
	for _, r := range []struct {
		name string
		reading
	}{{"spanflow", sf}, {"jaeger", jg}} {
		b.ReportMetric(float64(r.spans)/r.cpu.Seconds(), r.name+"-spans/cpu-s")
		b.ReportMetric(float64(r.spans)/seconds, r.name+"-spans/s")
		b.ReportMetric(float64(r.requests)/seconds, r.name+"-requests/s")
		b.ReportMetric(float64(r.spans)/float64(max(r.requests, 1)), r.name+"-spans/request")
	}
	b.ReportMetric((float64(sf.spans)/sf.cpu.Seconds())/(float64(jg.spans)/jg.cpu.Seconds()), "spanflow-x-jaeger")
}
