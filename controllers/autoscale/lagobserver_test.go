package autoscale

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// TestPollsCarryTheIngestersClientID: the operator's lag polls name themselves as the
// Ingester's pods do (kafka.clientID, "spanflow" by default), not as kafka-go's
// program@host, so a broker's quotas and request logs keyed by it cover them too.
func TestPollsCarryTheIngestersClientID(t *testing.T) {
	for set, want := range map[string]string{"team-a.traces": "team-a.traces", "": "spanflow"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1)
		go func() {
			nc, err := ln.Accept()
			if err != nil {
				got <- err.Error()
				return
			}
			defer nc.Close()
			// size, api key, version, correlation id, then the client id (int16 length).
			var header [14]byte
			if _, err := io.ReadFull(nc, header[:]); err != nil {
				got <- err.Error()
				return
			}
			id := make([]byte, binary.BigEndian.Uint16(header[12:]))
			_, _ = io.ReadFull(nc, id)
			got <- string(id)
		}()
		o := NewLagObserver(time.Hour, 3)
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		go func() { _ = o.Start(ctx); close(stopped) }()
		o.Observe(Target{Brokers: []string{ln.Addr().String()}, Topic: "spans", Group: "g", ClientID: set})
		select {
		case id := <-got:
			if id != want {
				t.Errorf("client id %q: the poll said %q, want %q", set, id, want)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("client id %q: no poll reached the broker", set)
		}
		cancel()
		_ = ln.Close()
		<-stopped
	}
}
