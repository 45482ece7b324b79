package ingester

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/otlpwire"
	"github.com/spanflow/spanflow/ingester/store"
	"github.com/spanflow/spanflow/internal/jaegertest"
	"github.com/spanflow/spanflow/internal/kafkatest"
)

// TestJaegerAcceptsEveryCompression: Jaeger v2 (an OpenTelemetry Collector) takes what the
// otlp writer sends with each compression it offers, over gRPC and over HTTP, and stores
// every span of it.
func TestJaegerAcceptsEveryCompression(t *testing.T) {
	jaeger := jaegertest.StartBackend(t)
	seq := uint64(10_000)
	for _, protocol := range []string{config.OTLPProtocolGRPC, config.OTLPProtocolHTTP} {
		for _, compression := range config.Compressions {
			t.Run(fmt.Sprintf("%s/%s", protocol, compression), func(t *testing.T) {
				cfg := config.OTLPStorage{Protocol: protocol, Endpoint: jaeger.OTLPGRPC, Insecure: true,
					Compression: compression, Timeout: config.Duration(5 * time.Second)}
				if protocol == config.OTLPProtocolHTTP {
					cfg.Endpoint = jaeger.OTLPHTTP
				}
				w, err := store.NewOTLP(cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close(context.Background())
				first := seq
				for range 4 {
					// Five traces a request: five pieces, as five otlp_proto messages reach
					// the writer.
					td := ptrace.NewTraces()
					for range 5 {
						seq++
						kafkatest.Traces(seq, 3).ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
					}
					if err := w.Write(context.Background(), otlpwire.RequestOf(td)); err != nil {
						t.Fatalf("write with %s over %s: %v", compression, protocol, err)
					}
				}
				for s := first + 1; s <= seq; s++ {
					id := kafkatest.Traces(s, 3).ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
					waitFor(t, 30*time.Second, "trace "+id.String()+" in Jaeger", func() bool {
						tr, found, _ := jaeger.Trace(id)
						return found && len(tr.Spans) == 3
					})
				}
			})
		}
	}
}
