package ingester

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/internal/kafkatest"
	"github.com/spanflow/spanflow/internal/otlptest"
)

// TestIngestsToOTLPBackend runs the ingester with the otlp writer against an OTLP/gRPC
// backend that starts out unavailable: once it is up, every span arrives.
func TestIngestsToOTLPBackend(t *testing.T) {
	const topic, group = "spans", "otlp"
	b := kafkatest.Start(t, topic, partitions)
	backend := otlptest.Start(t)
	backend.FailWith(status.Error(codes.Unavailable, "restarting"))

	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 300, 3)...)
	cfg := testConfig(b.Addr, topic, group)
	fastRetries(&cfg)
	cfg.Storage.Type = config.StorageOTLP
	cfg.Storage.OTLP.Endpoint = backend.Addr
	cfg.Storage.OTLP.Insecure = true
	r := startIngester(t, cfg, nil)
	time.Sleep(500 * time.Millisecond) // writes fail meanwhile
	backend.FailWith(nil)
	waitFor(t, 60*time.Second, "every span at the OTLP backend", func() bool { return backend.Spans() == 900 })
	r.stop(t)
	assertCommittedToEnd(t, b, group, topic)
	_, dups := backend.Received.Counts()
	t.Logf("otlp backend outage: 900 spans produced, 900 stored, %d duplicates", dups)
}
