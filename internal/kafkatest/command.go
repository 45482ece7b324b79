package kafkatest

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

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
	seed := fs.Uint64("seed", 1, "seed of the preloaded spans")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(*port),
		kfake.SeedTopics(int32(*partitions), *topic),
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
	addr := cluster.ListenAddrs()[0]
	if *preload > 0 {
		if err := preloadJaeger(addr, *topic, *preload, *seed); err != nil {
			fmt.Fprintln(stderr, "kfake: preloading:", err)
			return 1
		}
	}
	fmt.Fprintln(stdout, "ready", addr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return 0
}

func preloadJaeger(addr, topic string, n int, seed uint64) error {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	w := &kafka.Writer{
		Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.Hash{}, Transport: transport,
		RequiredAcks: kafka.RequireAll, BatchSize: 5000, BatchBytes: 16 << 20, BatchTimeout: 10 * time.Millisecond,
	}
	defer w.Close()
	gen := spangen.New(seed)
	const chunk = 5000
	for start := 0; start < n; start += chunk {
		msgs := make([]kafka.Message, 0, min(chunk, n-start))
		for i := start; i < start+cap(msgs); i++ {
			span := gen.JaegerSpan(uint64(i))
			data, err := span.Marshal()
			if err != nil {
				return err
			}
			msgs = append(msgs, kafka.Message{Key: spangen.TraceKey(span.TraceID), Value: data})
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			return err
		}
	}
	return nil
}
