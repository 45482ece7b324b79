package demo

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/internal/kafkatest"
	"github.com/spanflow/spanflow/internal/otlptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDemo runs the demo briefly and checks its own verdict and its summary.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	s, err := Run(context.Background(), Options{
		Dir: t.TempDir(), Duration: 3 * time.Second, Rate: 1000, Partitions: 3, Out: &out,
	}, logr.Discard())
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	if s.Produced == 0 || s.Stored != s.Produced || s.P99 <= 0 {
		t.Errorf("summary %+v", s)
	}
	for _, want := range []string{"lost 0", "spanflow inspect", "produced"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestDemoToOTLP sends the demo's spans to an OTLP/gRPC backend instead of the file store.
func TestDemoToOTLP(t *testing.T) {
	backend := otlptest.Start(t)
	otlp := config.Default().Storage.OTLP
	otlp.Endpoint, otlp.Insecure = backend.Addr, true
	var out bytes.Buffer
	s, err := Run(context.Background(), Options{Dir: t.TempDir(), Duration: 2 * time.Second, Rate: 500, Partitions: 2,
		Storage: config.StorageOTLP, OTLP: otlp, Out: &out}, logr.Discard())
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got := backend.Spans(); got != s.Produced || s.Stored != s.Produced {
		t.Errorf("backend has %d spans, %d produced, summary %+v", got, s.Produced, s)
	}
}

// TestDemoEncodings runs the demo briefly in each other encoding its generator writes:
// every span produced is stored once, read as the encoding says.
func TestDemoEncodings(t *testing.T) {
	for _, encoding := range Encodings[1:] {
		t.Run(encoding, func(t *testing.T) {
			var out bytes.Buffer
			s, err := Run(context.Background(), Options{Dir: t.TempDir(), Duration: 1500 * time.Millisecond, Rate: 500,
				Partitions: 2, Encoding: encoding, Out: &out}, logr.Discard())
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if s.Produced == 0 || s.Stored != s.Produced || s.Duplicates != 0 || !strings.Contains(out.String(), encoding) {
				t.Errorf("summary %+v\n%s", s, out.String())
			}
		})
	}
	if _, err := Run(context.Background(), Options{Dir: t.TempDir(), Encoding: "zipkin_thrift", Out: io.Discard}, logr.Discard()); err == nil {
		t.Error("the demo ran in an encoding its generator does not write")
	}
}

// TestDemoOnABrokerWithSpansAlready: on a broker of the user's whose topic holds spans
// already (an earlier run's, or other producers'), the demo reads, counts and checks its
// own — it read the whole topic and printed a negative loss.
func TestDemoOnABrokerWithSpansAlready(t *testing.T) {
	b := kafkatest.Start(t, topic, 2)
	// Spans another producer wrote, which no demo group has read.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var others atomic.Int64
	if err := produce(ctx, b.Addr, Options{Duration: time.Second, Rate: 500, Encoding: config.EncodingJaegerProto}, &others); err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
	if others.Load() == 0 {
		t.Fatal("no spans on the topic before the demo")
	}
	var out bytes.Buffer
	s, err := Run(context.Background(), Options{Dir: t.TempDir(), Duration: time.Second, Rate: 500, Broker: b.Addr, Out: &out}, logr.Discard())
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if s.Produced == 0 || s.Stored != s.Produced || s.Duplicates != 0 || !strings.Contains(out.String(), "lost 0") {
		t.Errorf("the demo counted %+v:\n%s", s, out.String())
	}
	// Its group is not left behind on the user's broker.
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	groups, err := (&kafka.Client{Addr: kafka.TCP(b.Addr), Transport: transport, Timeout: 5 * time.Second}).ListGroups(context.Background(), &kafka.ListGroupsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups.Groups {
		if strings.HasPrefix(g.GroupID, group) {
			t.Errorf("the run left its group %s behind", g.GroupID)
		}
	}
}
