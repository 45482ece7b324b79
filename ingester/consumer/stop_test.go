package consumer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
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

// TestAStopCommitsWhatItDrains: deliveries in flight when the stop comes are finished by
// the drain, and the generation's last commit covers them — the stop must not cut the
// group's connections before (the review found it did: every stop left its drained
// deliveries to be read again).
func TestAStopCommitsWhatItDrains(t *testing.T) {
	const topic, group, partitions = "stop-drains", "stop-drains", 3
	b := kafkatest.Start(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 300, 1)...)
	k := quickKafka(b, topic, group)
	k.CommitInterval = config.Duration(time.Hour) // only finished deliveries commit
	release, started := make(chan struct{}), make(chan struct{}, partitions)
	var mu sync.Mutex
	handed := map[int]int64{}
	chain := processor.Func(func(_ context.Context, d *processor.Delivery) error {
		last := d.Messages[len(d.Messages)-1]
		mu.Lock()
		handed[last.Partition] = max(handed[last.Partition], last.Offset+1)
		mu.Unlock()
		started <- struct{}{}
		<-release // finished only once the stop began
		d.Spans = len(d.Messages)
		d.Partition.Done(d)
		return nil
	})
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	c := New(Settings{Kafka: k, DeliverySpans: 1000, DeliveryBytes: 1 << 20, Linger: 50 * time.Millisecond, DrainTimeout: 5 * time.Second},
		kafka.DefaultDialer, &kafka.Client{Addr: kafka.TCP(b.Addr), Transport: transport}, chain, metrics.New(prometheus.NewRegistry()), logr.Discard())
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	for range partitions {
		select {
		case <-started:
		case <-time.After(20 * time.Second):
			t.Fatal("no delivery reached the chain")
		}
	}
	stop()
	time.Sleep(200 * time.Millisecond)
	close(release)
	if err := <-done; err != nil {
		t.Error(err)
	}
	committed := b.CommittedOffsets(t, group, topic, partitions)
	mu.Lock()
	defer mu.Unlock()
	for p := range partitions {
		if committed[p] != handed[p] {
			t.Errorf("partition %d: committed %d, drained to %d: what the stop drained was not committed", p, committed[p], handed[p])
		}
	}
}

// TestFailedTLSJoinsCloseTheirSockets: a join whose TLS handshake fails (a broker
// certificate the pod does not trust) closes its socket — kafka-go left it to the
// collector, and the group's set of connections kept it from that: a descriptor a
// second, for good — and one that succeeds is kept, to be closed under a held join.
func TestFailedTLSJoinsCloseTheirSockets(t *testing.T) {
	b, sec := kafkatest.StartSecure(t, "tls-joins", 1)
	k := quickKafka(b, "tls-joins", "tls-joins")
	untrusting := &kafka.Dialer{Timeout: 5 * time.Second, TLS: &tls.Config{MinVersion: tls.VersionTLS12}}
	c := New(Settings{Kafka: k}, untrusting, &kafka.Client{Addr: kafka.TCP("127.0.0.1:1"), Timeout: time.Second}, nil,
		metrics.New(prometheus.NewRegistry()), logr.Discard())
	conns := &groupConns{open: map[net.Conn]struct{}{}}
	gated := c.joinGated(conns)
	for range 5 {
		if nc, err := gated.DialContext(context.Background(), "tcp", b.Addr); err == nil {
			_ = nc.Close()
			t.Fatal("a certificate of no trusted CA passed")
		}
	}
	conns.mu.Lock()
	if len(conns.open) != 0 {
		t.Errorf("%d sockets of failed handshakes are kept open", len(conns.open))
	}
	conns.mu.Unlock()

	ca, err := os.ReadFile(sec.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	trusting := &kafka.Dialer{Timeout: 5 * time.Second, TLS: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}}
	c = New(Settings{Kafka: k}, trusting, &kafka.Client{Addr: kafka.TCP("127.0.0.1:1"), Timeout: time.Second}, nil,
		metrics.New(prometheus.NewRegistry()), logr.Discard())
	nc, err := c.joinGated(conns).DialContext(context.Background(), "tcp", b.Addr)
	if err != nil {
		t.Fatalf("a trusted broker: %v", err)
	}
	conns.mu.Lock()
	kept := len(conns.open)
	conns.mu.Unlock()
	if kept != 1 {
		t.Errorf("%d connections kept after one that succeeded", kept)
	}
	_ = nc.Close()
	conns.mu.Lock()
	defer conns.mu.Unlock()
	if len(conns.open) != 0 {
		t.Errorf("a closed connection is still kept")
	}
}
