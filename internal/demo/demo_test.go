package demo

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/spanflow/spanflow/ingester/config"
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

type sink struct {
	ptraceotlp.UnimplementedGRPCServer
	spans atomic.Int64
}

func (s *sink) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	s.spans.Add(int64(req.Traces().SpanCount()))
	return ptraceotlp.NewExportResponse(), nil
}

// TestDemoToOTLP sends the demo's spans to an OTLP/gRPC backend instead of the file store.
func TestDemoToOTLP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	backend := &sink{}
	ptraceotlp.RegisterGRPCServer(srv, backend)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()
	otlp := config.Default().Storage.OTLP
	otlp.Endpoint, otlp.Insecure = l.Addr().String(), true
	var out bytes.Buffer
	s, err := Run(context.Background(), Options{Dir: t.TempDir(), Duration: 2 * time.Second, Rate: 500, Partitions: 2,
		Storage: config.StorageOTLP, OTLP: otlp, Out: &out}, logr.Discard())
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got := backend.spans.Load(); got < int64(s.Produced) || s.Stored != s.Produced {
		t.Errorf("backend has %d spans, %d produced, summary %+v", got, s.Produced, s)
	}
}
