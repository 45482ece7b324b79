package ingester

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/store"
	"github.com/spanflow/spanflow/internal/kafkatest"
)

// otlpBackend is an OTLP/gRPC trace backend that keeps every span's identity and can be
// unavailable for a while.
type otlpBackend struct {
	ptraceotlp.UnimplementedGRPCServer
	mem *store.Memory

	mu   sync.Mutex
	down bool
}

func (b *otlpBackend) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	b.mu.Lock()
	down := b.down
	b.mu.Unlock()
	if down {
		return ptraceotlp.NewExportResponse(), status.Error(codes.Unavailable, "restarting")
	}
	return ptraceotlp.NewExportResponse(), b.mem.Write(ctx, req.Traces())
}

// TestIngestsToOTLPBackend runs the ingester with the otlp writer against an OTLP/gRPC
// backend that starts out unavailable: once it is up, every span arrives.
func TestIngestsToOTLPBackend(t *testing.T) {
	const topic, group = "spans", "otlp"
	b := kafkatest.Start(t, topic, partitions)
	backend := &otlpBackend{mem: store.NewMemory(), down: true}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, backend)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()

	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 300, 3)...)
	cfg := testConfig(b.Addr, topic, group)
	fastRetries(&cfg)
	cfg.Storage.Type = config.StorageOTLP
	cfg.Storage.OTLP.Endpoint = l.Addr().String()
	cfg.Storage.OTLP.Insecure = true
	r := startIngester(t, cfg, nil)
	time.Sleep(500 * time.Millisecond) // writes fail meanwhile
	backend.mu.Lock()
	backend.down = false
	backend.mu.Unlock()
	waitFor(t, 60*time.Second, "every span at the OTLP backend", func() bool { n, _ := backend.mem.Counts(); return n == 900 })
	r.stop(t)
	assertCommittedToEnd(t, b, group, topic)
	_, dups := backend.mem.Counts()
	t.Logf("otlp backend outage: 900 spans produced, 900 stored, %d duplicates", dups)
}
