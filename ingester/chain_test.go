package ingester

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/decode"
	"github.com/spanflow/spanflow/ingester/metrics"
	"github.com/spanflow/spanflow/ingester/otlpwire"
	"github.com/spanflow/spanflow/ingester/processor"
	"github.com/spanflow/spanflow/internal/kafkatest"
)

// donePartition is a processor.Partition that tells when a delivery is done.
type donePartition struct {
	done    chan *processor.Delivery
	revoked chan struct{}
}

func (p *donePartition) ID() int                    { return 0 }
func (p *donePartition) Done(d *processor.Delivery) { p.done <- d }
func (p *donePartition) Hold(error) func()          { return func() {} }
func (p *donePartition) Revoked() <-chan struct{}   { return p.revoked }

// flakyWriter fails its first failures writes (transiently), then takes every one.
type flakyWriter struct {
	mu       sync.Mutex
	failures int
	calls    int
}

func (w *flakyWriter) Write(context.Context, otlpwire.Request) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.calls <= w.failures {
		return errors.New("otlp/grpc: rpc error: code = Unavailable desc = connection refused")
	}
	return nil
}

// TestRetriesAreCountedOnce: both the retry decorator and the failure policy (while it
// holds the partition) try a delivery again; retries_total counts each write after the
// first once — neither twice nor not at all.
func TestRetriesAreCountedOnce(t *testing.T) {
	cfg := config.Default()
	cfg.Processing.Retry = config.Retry{Min: config.Duration(time.Millisecond), Max: config.Duration(2 * time.Millisecond), Attempts: 3}
	// 3 failed writes in the retry decorator, the policy holds and tries again: 3 more,
	// then again: one more failure and the write that succeeds.
	w := &flakyWriter{failures: 7}
	decoder, err := decode.New(config.EncodingOTLPProto)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(prometheus.NewRegistry())
	chain := NewChain(cfg, decoder, w, nil, m, logr.Discard())
	p := &donePartition{done: make(chan *processor.Delivery, 1), revoked: make(chan struct{})}
	msg := kafkatest.OTLPProtoMessage(t, 1, 2)
	if err := chain.Process(context.Background(), processor.NewDelivery(p, []kafka.Message{msg})); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the delivery was not written")
	}
	chain.Close()
	if w.calls != 8 {
		t.Fatalf("%d writes, want 8", w.calls)
	}
	if got := testutil.ToFloat64(m.Retries); got != float64(w.calls-1) {
		t.Errorf("retries_total %v after %d writes of one delivery, want %d", got, w.calls, w.calls-1)
	}
}
