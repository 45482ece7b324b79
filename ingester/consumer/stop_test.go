package consumer

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/metrics"
	"github.com/spanflow/spanflow/ingester/processor"
	"github.com/spanflow/spanflow/internal/kafkatest"
)

// TestAStopDoesNotWaitForAJoin: a member that went without leaving (SIGKILLed) stays in
// the group until its session times out, and the brokers hold a new member's join for the
// rebalance meanwhile; told to stop then, with nothing read, the consumer gives the join
// up at once — it waited for the brokers' answer, up to the dead member's session
// timeout, past a pod's grace period.
func TestAStopDoesNotWaitForAJoin(t *testing.T) {
	const topic, group = "stop-while-joining", "stop-while-joining"
	b := kafkatest.Start(t, topic, 2)

	// The dead member: it joins with a minute's session, then its connections die and
	// it never dials again.
	var mu sync.Mutex
	var ghostConns []net.Conn
	dead := false
	assigned := make(chan struct{})
	var once sync.Once
	ghost, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.SessionTimeout(time.Minute), kgo.RebalanceTimeout(time.Minute), kgo.Balancers(kgo.RangeBalancer()), // as kafka-go balances
		kgo.RetryTimeout(time.Second), // its leaving, once dead, fails fast
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { once.Do(func() { close(assigned) }) }),
		kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			mu.Lock()
			defer mu.Unlock()
			if dead {
				return nil, net.ErrClosed
			}
			nc, err := (&net.Dialer{}).DialContext(ctx, network, host)
			if err == nil {
				ghostConns = append(ghostConns, nc)
			}
			return nc, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer ghost.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			ghost.PollRecords(ctx, 1)
		}
	}()
	select {
	case <-assigned:
	case <-ctx.Done():
		t.Fatal("the first member never joined")
	}
	mu.Lock()
	dead = true
	for _, nc := range ghostConns {
		_ = nc.Close()
	}
	mu.Unlock()

	k := quickKafka(b, topic, group)
	k.SessionTimeout, k.RebalanceTimeout = config.Duration(time.Minute), config.Duration(time.Minute)
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	chain := processor.Func(func(_ context.Context, d *processor.Delivery) error { d.Partition.Done(d); return nil })
	c := New(Settings{Kafka: k, DeliverySpans: 100, DeliveryBytes: 1 << 20, Linger: 50 * time.Millisecond, DrainTimeout: time.Second},
		kafka.DefaultDialer, &kafka.Client{Addr: kafka.TCP(b.Addr), Transport: transport}, chain, metrics.New(prometheus.NewRegistry()), logr.Discard())
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	time.Sleep(2 * time.Second) // its join is held: the dead member is in the group for a minute
	if c.Ready() == nil {
		t.Fatal("the consumer joined while the dead member held the rebalance: the test shows nothing")
	}
	stop()
	stopped := time.Now()
	defer func() { t.Logf("stopped in %v", time.Since(stopped)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the stop waited for the join the brokers hold (the dead member's session is a minute)")
	}
}
