package kafkatest

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/internal/spangen"
)

// Main runs a kfake broker as a process of its own (hack/kfake, and tests that need the
// broker outside their process). It prints "ready ADDR" on stdout once it listens and any
// preloaded messages are stored, and runs until SIGTERM or SIGINT. It returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kfake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 0, "port to listen on (0: any free port)")
	topic := fs.String("topic", "spans", "topic to create")
	partitions := fs.Int("partitions", 6, "partitions of the topic")
	dataDir := fs.String("data-dir", "", "directory to persist topics and offsets in (empty: memory only)")
	preload := fs.Int("preload-jaeger", 0, "produce this many realistic jaeger_proto spans to the topic before reporting ready")
	otlpTopic := fs.String("otlp-topic", "otlp_spans", "topic to create for -preload-otlp")
	preloadOTLP := fs.Int("preload-otlp", 0, "produce this many otlp_proto messages, each one realistic trace of 3–7 spans as the Collector's Kafka exporter writes it, to -otlp-topic")
	otlpJSONTopic := fs.String("otlp-json-topic", "otlp_json_spans", "topic to create for -preload-otlp-json")
	preloadOTLPJSON := fs.Int("preload-otlp-json", 0, "produce this many otlp_json messages (the traces of -preload-otlp, in OTLP/JSON) to -otlp-json-topic")
	seed := fs.Uint64("seed", 1, "seed of the preloaded spans")
	produceOTLP := fs.Int("produce-otlp", 0, "once ready, produce this many otlp_proto messages a second (each a trace of 3–7 spans, as -preload-otlp's) to -otlp-topic until stopped: a live topic")
	racks := fs.String("racks", "", "comma-separated racks, one broker in each, that select the replica a fetch naming its rack reads -topic from, as RackAwareReplicaSelector does (empty: one broker)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	brokers := 1
	if *racks != "" {
		brokers = len(strings.Split(*racks, ","))
	}
	ports := make([]int, brokers) // the first on -port, the others on any free one
	ports[0] = *port
	opts := []kfake.Opt{
		kfake.NumBrokers(brokers),
		kfake.Ports(ports...),
		kfake.SeedTopics(int32(*partitions), *topic, *otlpTopic, *otlpJSONTopic),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
		kfake.AllowAutoTopicCreation(),
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintln(stderr, "kfake:", err)
		return 1
	}
	defer cluster.Close()
	if *racks != "" {
		SelectReplicasByRack(cluster, strings.Split(*racks, ","), *topic, int32(*partitions))
	}
	addr := cluster.ListenAddrs()[0]
	if *preload > 0 {
		if err := preloadJaeger(addr, *topic, *preload, *seed); err != nil {
			fmt.Fprintln(stderr, "kfake: preloading:", err)
			return 1
		}
	}
	if *preloadOTLP > 0 {
		if err := preloadOTLPTraces(addr, *otlpTopic, *preloadOTLP, *seed, &ptrace.ProtoMarshaler{}); err != nil {
			fmt.Fprintln(stderr, "kfake: preloading:", err)
			return 1
		}
	}
	if *preloadOTLPJSON > 0 {
		if err := preloadOTLPTraces(addr, *otlpJSONTopic, *preloadOTLPJSON, *seed, &ptrace.JSONMarshaler{}); err != nil {
			fmt.Fprintln(stderr, "kfake: preloading:", err)
			return 1
		}
	}
	fmt.Fprintln(stdout, "ready", addr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *produceOTLP > 0 {
		if err := produceOTLPTraces(ctx, addr, *otlpTopic, *produceOTLP, *seed+1); err != nil && ctx.Err() == nil {
			fmt.Fprintln(stderr, "kfake: producing:", err)
			return 1
		}
	}
	<-ctx.Done()
	return 0
}

// produceOTLPTraces writes perSecond otlp_proto trace messages a second to topic, in
// batches every 10 ms (as a producer's linger sends them), until ctx ends.
func produceOTLPTraces(ctx context.Context, addr, topic string, perSecond int, seed uint64) error {
	gen := spangen.New(seed)
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.Hash{}, Transport: transport,
		RequiredAcks: kafka.RequireAll, BatchSize: 10000, BatchTimeout: 10 * time.Millisecond}
	defer w.Close()
	const tick = 10 * time.Millisecond
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	start, sent := time.Now(), 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-ticker.C:
			due := int(now.Sub(start).Seconds()*float64(perSecond)) - sent
			msgs := make([]kafka.Message, 0, max(due, 0))
			for range due {
				td, key, err := gen.OTLPTrace(uint64(sent), now)
				if err != nil {
					return err
				}
				data, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
				if err != nil {
					return err
				}
				msgs = append(msgs, kafka.Message{Key: key, Value: data})
				sent++
			}
			if len(msgs) > 0 {
				if err := w.WriteMessages(ctx, msgs...); err != nil {
					return err
				}
			}
		}
	}
}

func preloadJaeger(addr, topic string, n int, seed uint64) error {
	gen := spangen.New(seed)
	return preload(addr, topic, n, func(i int) (kafka.Message, error) {
		span := gen.JaegerSpan(uint64(i))
		data, err := span.Marshal()
		return kafka.Message{Key: spangen.TraceKey(span.TraceID), Value: data}, err
	})
}

// preloadOTLPTraces writes n messages of one trace each, as the Collector's Kafka
// exporter writes otlp_proto or otlp_json (m): the spans of each service under their own
// resource.
func preloadOTLPTraces(addr, topic string, n int, seed uint64, m ptrace.Marshaler) error {
	gen := spangen.New(seed)
	start := time.Unix(1_780_000_000, 0)
	return preload(addr, topic, n, func(i int) (kafka.Message, error) {
		td, key, err := gen.OTLPTrace(uint64(i), start.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			return kafka.Message{}, err
		}
		data, err := m.MarshalTraces(td)
		return kafka.Message{Key: key, Value: data}, err
	})
}

// preload writes n messages that message(i) makes to topic.
func preload(addr, topic string, n int, message func(i int) (kafka.Message, error)) error {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	w := &kafka.Writer{
		Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.Hash{}, Transport: transport,
		RequiredAcks: kafka.RequireAll, BatchSize: 5000, BatchBytes: 900 << 10, // under kfake's 1 MiB message.max.bytes, per partition
		BatchTimeout: 10 * time.Millisecond, // a chunk's batches are never full: without it each waits the default second
	}
	defer w.Close()
	const chunk = 5000
	for first := 0; first < n; first += chunk {
		msgs := make([]kafka.Message, 0, min(chunk, n-first))
		for i := first; i < first+cap(msgs); i++ {
			msg, err := message(i)
			if err != nil {
				return err
			}
			msgs = append(msgs, msg)
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			return err
		}
	}
	return nil
}
