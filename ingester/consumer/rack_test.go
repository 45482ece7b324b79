package consumer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/spanflow/spanflow/ingester/metrics"
	"github.com/spanflow/spanflow/ingester/processor"
	"github.com/spanflow/spanflow/internal/kafkatest"
)

// rackBrokers is three brokers whose partition 0 of topic may be read from a follower,
// and whose leader names that follower to fetches from rack "zone-b", as brokers with
// RackAwareReplicaSelector do when the follower is in the client's rack. It counts the
// fetches each broker answers, and can have the follower refuse its next fetches.
type rackBrokers struct {
	*kafkatest.Broker
	leader, follower int32

	mu       sync.Mutex
	fetches  map[int32]int
	racks    map[string]bool
	refusals []int16 // the error codes of the follower's next answers
	throttle int32   // ms the leader's redirects say it throttles for
	times    []fetchAt
}

// fetchAt is a fetch a broker received, and when.
type fetchAt struct {
	node int32
	at   time.Time
}

func startRackBrokers(t *testing.T, topic string) *rackBrokers {
	b := &rackBrokers{Broker: kafkatest.Start(t, topic, 1, kfake.NumBrokers(3)), fetches: map[int32]int{}, racks: map[string]bool{}}
	b.leader = b.Cluster.LeaderFor(topic, 0)
	b.follower = (b.leader + 1) % 3
	b.Cluster.SetFollowers(topic, 0, []int32{b.follower})
	b.Cluster.ControlKey(int16(kmsg.Fetch), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.FetchRequest)
		node := b.Cluster.CurrentNode()
		b.mu.Lock()
		defer b.mu.Unlock()
		b.fetches[node]++
		b.racks[req.Rack] = true
		b.times = append(b.times, fetchAt{node, time.Now()})
		answer := func(code int16, preferred int32) (kmsg.Response, error, bool) {
			b.Cluster.KeepControl()
			return kafkatest.FetchAnswer(req, topic, 0, code, preferred), nil, true
		}
		switch {
		case node == b.leader && req.Rack == "zone-b":
			resp, err, handled := answer(0, b.follower) // no records: read them from the follower
			resp.(*kmsg.FetchResponse).SetThrottle(b.throttle)
			return resp, err, handled
		case node == b.follower && len(b.refusals) > 0:
			code := b.refusals[0]
			b.refusals = b.refusals[1:]
			return answer(code, -1)
		}
		return nil, nil, false // the broker answers
	})
	return b
}

func (b *rackBrokers) counts() (leader, follower int, racks []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for r := range b.racks {
		racks = append(racks, fmt.Sprintf("%q", r))
	}
	slices.Sort(racks)
	return b.fetches[b.leader], b.fetches[b.follower], racks
}

func (b *rackBrokers) refuse(codes ...int16) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refusals = append(b.refusals, codes...)
}

// offsets reads n messages with f and returns their offsets, space-separated.
func offsets(ctx context.Context, t *testing.T, f *fetcher, n int) string {
	t.Helper()
	return strings.Join(readAs(ctx, t, f, n, func(m kafka.Message) string { return fmt.Sprint(m.Offset) }), " ")
}

func offsetRange(from, to int) string {
	var s []string
	for i := from; i < to; i++ {
		s = append(s, fmt.Sprint(i))
	}
	return strings.Join(s, " ")
}

// TestFetchesGoToTheReplicaTheLeaderNames: a fetcher in a rack says so, and reads from the
// replica the leader names for it (KIP-392) every record once, in order; when that
// replica fails — the offset out of its range, no longer a replica — the leader serves
// again, without the rack for a while, and no record is lost or read twice. The lease
// ended, the leader is asked again. A fetcher in no rack reads from the leader only.
func TestFetchesGoToTheReplicaTheLeaderNames(t *testing.T) {
	const topic = "racks"
	b := startRackBrokers(t, topic)
	produceBatch := func(i int) { // a record batch of 50, the most a fetch brings here
		var batch []kafka.Message
		for j := range 50 {
			batch = append(batch, kafka.Message{Value: fmt.Appendf(nil, "%d", i*50+j)})
		}
		b.Produce(t, topic, batch...)
	}
	for i := range 6 {
		produceBatch(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	f := testFetcher(t, b.Broker, topic, 0, 0)
	f.rack, f.maxBytes = "zone-b", 1 // a batch a fetch
	var onFollower []bool
	f.fromFollower = func(follower bool) { onFollower = append(onFollower, follower) }
	if got := offsets(ctx, t, f, 100); got != offsetRange(0, 100) {
		t.Fatalf("read %s", got)
	}
	leader, follower, racks := b.counts()
	if leader != 1 || follower < 1 || fmt.Sprint(racks) != `["zone-b"]` || fmt.Sprint(onFollower) != "[false true]" {
		t.Fatalf("fetches: %d at the leader, %d at the follower, racks %v; connections to a follower %v", leader, follower, racks, onFollower)
	}

	// The follower has not the offset: the leader serves it, and goes on serving.
	b.refuse(kerr.OffsetOutOfRange.Code)
	if got := offsets(ctx, t, f, 100); got != offsetRange(100, 200) {
		t.Fatalf("after the follower's offset out of range, read %s", got)
	}
	leaderNow, _, racks := b.counts()
	if leaderNow <= leader || fmt.Sprint(racks) != `["" "zone-b"]` || f.onReplica {
		t.Errorf("after the follower failed: %d fetches at the leader (%d before), racks %v, on the replica %t", leaderNow, leader, racks, f.onReplica)
	}

	// Its time up, the rack is said again; the leader names the replica, which then
	// refuses as no longer a replica.
	f.rackAfter = time.Time{}
	b.refuse(kerr.NotLeaderForPartition.Code)
	if got := offsets(ctx, t, f, 50); got != offsetRange(200, 250) {
		t.Fatalf("after the follower left, read %s", got)
	}
	if f.onReplica || !time.Now().Before(f.rackAfter) {
		t.Errorf("after the follower left: on the replica %t, the rack said again at %v", f.onReplica, f.rackAfter)
	}

	// The rack said again, the replica serves.
	f.rackAfter = time.Time{}
	if got := offsets(ctx, t, f, 50); got != offsetRange(250, 300) || !f.onReplica {
		t.Fatalf("read %s, on the replica %t", got, f.onReplica)
	}

	// A lease that ended — while the partition was read, or while it was not (held, say):
	// the leader is asked first, and names the replica again.
	leaseEnds := func(what string, batch int, meanwhile func()) {
		t.Helper()
		leader, _, _ := b.counts()
		meanwhile()
		f.replica.until = time.Now()
		produceBatch(batch)
		if got := offsets(ctx, t, f, 50); got != offsetRange(batch*50, batch*50+50) {
			t.Fatalf("after the lease ended %s, read %s", what, got)
		}
		if leaderNow, _, _ := b.counts(); leaderNow != leader+1 || !f.onReplica {
			t.Errorf("after the lease ended %s: %d fetches at the leader, %d before; on the replica %t", what, leaderNow, leader, f.onReplica)
		}
	}
	leaseEnds("while read", 6, func() {})
	leaseEnds("unread", 7, f.disconnect)

	// No rack: the leader only.
	_, follower, _ = b.counts()
	plain := testFetcher(t, b.Broker, topic, 0, 0)
	if got := offsets(ctx, t, plain, 400); got != offsetRange(0, 400) {
		t.Fatalf("without a rack, read %s", got)
	}
	if _, followerNow, _ := b.counts(); followerNow != follower || plain.onReplica {
		t.Errorf("without a rack, %d fetches reached the follower", followerNow-follower)
	}
}

// TestAGroupInARackReadsFromTheReplicaItIsNamed: a member configured with kafka.rack reads
// every message once from the replica the leader names, commits them, and its gauge says
// the partition is read from a follower.
func TestAGroupInARackReadsFromTheReplicaItIsNamed(t *testing.T) {
	const topic, group, messages = "rack-group", "in-a-rack", 2000
	b := startRackBrokers(t, topic)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, messages, 20)...)
	k := quickKafka(b.Broker, topic, group)
	k.Rack = "zone-b"
	m := metrics.New(prometheus.NewRegistry())
	var fromFollower float64
	s := Settings{Kafka: k, DeliverySpans: 1000, DeliveryBytes: 1 << 20, FetchedBytes: 64 << 20, Linger: 50 * time.Millisecond, DrainTimeout: time.Second}
	if count := readToTheEnd(t, b.Broker, s, m, 1, func() { fromFollower = testutil.ToFloat64(m.ForPartition(0).FromFollower) }); count != messages {
		t.Errorf("read %d distinct messages, want %d", count, messages)
	}
	if leader, follower, racks := b.counts(); follower == 0 || leader > 2 || fromFollower != 1 {
		t.Errorf("fetches: %d at the leader, %d at the follower, racks %v; the gauge says read from a follower: %v", leader, follower, racks, fromFollower)
	}
}

// TestAThrottledFetchWaits: a broker over a quota answers a fetch of v11 at once and then
// reads nothing of the connection for the time it says (KIP-219); the next fetch waits
// that long rather than queue behind it, or time out and reconnect around it.
func TestAThrottledFetchWaits(t *testing.T) {
	const topic = "throttled"
	b := startRackBrokers(t, topic)
	b.throttle = 400
	b.Produce(t, topic, kafka.Message{Value: []byte("one")})
	f := testFetcher(t, b.Broker, topic, 0, 0)
	f.rack = "zone-b"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got := offsets(ctx, t, f, 1); got != "0" {
		t.Fatalf("read %s", got)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.times) < 2 || b.times[0].node != b.leader || b.times[1].node != b.follower {
		t.Fatalf("fetches %+v", b.times)
	}
	if waited := b.times[1].at.Sub(b.times[0].at); waited < 400*time.Millisecond {
		t.Errorf("the fetch after a throttle of 400 ms came %v later", waited)
	}
}

// TestBrokersThatReadNoRackAreReadFromTheirLeaders: brokers older than Kafka 2.4 (Fetch
// below v11) would refuse every fetch that names a rack; the fetcher asks them once,
// leaves the rack out, says so, and reads every record.
func TestBrokersThatReadNoRackAreReadFromTheirLeaders(t *testing.T) {
	const topic = "old-brokers"
	b := kafkatest.Start(t, topic, 1, kfake.MaxVersions(kversion.V2_2_0()))
	b.Produce(t, topic, kafka.Message{Value: []byte("one")}, kafka.Message{Value: []byte("two")})
	f := testFetcher(t, b, topic, 0, 0)
	f.rack = "zone-b"
	var refused []int16
	f.rackRefused = func(version int16) { refused = append(refused, version) }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got := offsets(ctx, t, f, 2); got != "0 1" {
		t.Fatalf("read %s", got)
	}
	f.disconnect()
	b.Produce(t, topic, kafka.Message{Value: []byte("three")})
	if got := offsets(ctx, t, f, 1); got != "2" {
		t.Fatalf("read %s", got)
	}
	if fmt.Sprint(refused) != "[10]" || f.rack != "" {
		t.Errorf("told of the brokers' highest Fetch %v, rack %q; want once, v10, and no rack", refused, f.rack)
	}
}

// TestARackNoBrokerIsInIsSaid: a rack no broker is in — named otherwise than the brokers
// name theirs, or brokers without racks — reads every partition from its leader; that is
// said once, with the brokers' racks.
func TestARackNoBrokerIsInIsSaid(t *testing.T) {
	brokers := []kafka.Broker{{ID: 0, Rack: "use1-az1"}, {ID: 1, Rack: "use1-az2"}, {ID: 2, Rack: "use1-az1"}}
	for rack, want := range map[string]string{
		"use1-az2":   "",
		"us-east-1b": "kafka.rack must be one of the brokers' racks: use1-az1, use1-az2",
	} {
		if got := rackProblem(brokers, rack); !strings.HasPrefix(got, want) || (want == "") != (got == "") {
			t.Errorf("%s: %q, want %q", rack, got, want)
		}
	}
	if got := rackProblem([]kafka.Broker{{ID: 0}}, "zone-b"); !strings.Contains(got, "broker.rack is not set") {
		t.Errorf("brokers without racks: %q", got)
	}

	// kfake's brokers are all in rack "krack".
	const topic, group = "rack-check", "rack-check"
	b := kafkatest.Start(t, topic, 1)
	k := quickKafka(b, topic, group)
	k.Rack = "zone-b"
	var mu sync.Mutex
	var lines []string
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, args)
	}, funcr.Options{})
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	said := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(strings.Join(lines, "\n"), "one of the brokers' racks: krack")
	}

	// Brokers that cannot be reached yet say nothing of their racks: they are asked again
	// (at the next generation's start) until they answer.
	client := &kafka.Client{Addr: kafka.TCP("127.0.0.1:1"), Transport: transport}
	early := New(Settings{Kafka: k}, nil, client, nil, metrics.New(prometheus.NewRegistry()), log)
	early.checkRack(context.Background())
	if said() || early.rackChecked.Load() {
		t.Fatal("the rack was checked against brokers that could not be reached")
	}
	client.Addr = kafka.TCP(b.Addr)
	early.checkRack(context.Background())
	if !said() {
		t.Fatalf("not said once the brokers answered; logged:\n%s", strings.Join(lines, "\n"))
	}
	mu.Lock()
	lines = nil
	mu.Unlock()

	chain := processor.Func(func(_ context.Context, d *processor.Delivery) error { d.Partition.Done(d); return nil })
	c := New(Settings{Kafka: k, DeliverySpans: 100, DeliveryBytes: 1 << 20, Linger: 50 * time.Millisecond, DrainTimeout: time.Second},
		kafka.DefaultDialer, &kafka.Client{Addr: kafka.TCP(b.Addr), Transport: transport}, chain, metrics.New(prometheus.NewRegistry()), log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if said() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not said; logged:\n%s", strings.Join(lines, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}
