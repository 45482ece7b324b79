package autoscale

import (
	"context"
	"testing"
	"time"

	"github.com/spanflow/spanflow/internal/kafkatest"
)

// TestPollsCarryTheIngestersClientID: the operator's lag polls name themselves as the
// Ingester's pods do (kafka.clientID, "spanflow" by default; they carried none before),
// so a broker's quotas and request logs keyed by it cover them too.
func TestPollsCarryTheIngestersClientID(t *testing.T) {
	for set, want := range map[string]string{"team-a.traces": "team-a.traces", "": "spanflow"} {
		addr, got := kafkatest.ClientIDs(t)
		o := NewLagObserver(time.Hour, 3)
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		go func() { _ = o.Start(ctx); close(stopped) }()
		o.Observe(Target{Brokers: []string{addr}, Topic: "spans", Group: "g", ClientID: set})
		select {
		case id := <-got:
			if id != want {
				t.Errorf("client id %q: the poll said %q, want %q", set, id, want)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("client id %q: no poll reached the broker", set)
		}
		cancel()
		<-stopped
	}
}
