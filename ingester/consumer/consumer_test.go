package consumer

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/goleak"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/decode"
	"github.com/spanflow/spanflow/ingester/eventlog"
	"github.com/spanflow/spanflow/ingester/failure"
	"github.com/spanflow/spanflow/ingester/fetchwire"
	"github.com/spanflow/spanflow/ingester/loadreport"
	"github.com/spanflow/spanflow/ingester/metrics"
	"github.com/spanflow/spanflow/ingester/processor"
	"github.com/spanflow/spanflow/ingester/store"
	"github.com/spanflow/spanflow/internal/kafkatest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quickKafka is the default Kafka settings for topic and group on b, with a group that
// notices a member gone within a second and fetches that wait at most 100 ms.
func quickKafka(b *kafkatest.Broker, topic, group string) config.Kafka {
	k := config.Default().Kafka
	k.Brokers, k.Topic, k.ConsumerGroup = []string{b.Addr}, topic, group
	k.SessionTimeout, k.HeartbeatInterval, k.MaxWait = config.Duration(time.Second), config.Duration(100*time.Millisecond), config.Duration(100*time.Millisecond)
	return k
}

func testPartition() *partition {
	m := metrics.New(prometheus.NewRegistry())
	return newPartition(kafka.PartitionAssignment{ID: 3, Offset: 0}, m.ForPartition(3), logr.Discard(), newHoldLogs(logr.Discard()),
		make(chan struct{}), make(chan struct{}, 1), func(*processor.Delivery) {})
}

// TestHoldsAreCounted: a partition held by two deliveries stays paused until both let go.
func TestHoldsAreCounted(t *testing.T) {
	p := testPartition()
	releaseA := p.Hold(errors.New("offset 5: refused"))
	releaseB := p.Hold(errors.New("offset 9: refused"))
	releaseA()
	releaseA() // a release is idempotent
	if p.pausedReason() == nil {
		t.Fatal("one of two holds released, and the partition resumed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.waitUnpaused(ctx, nil); err == nil {
		t.Fatal("waitUnpaused returned while a hold is open")
	}
	releaseB()
	if p.pausedReason() != nil || p.waitUnpaused(context.Background(), nil) != nil {
		t.Error("still paused after every hold was released")
	}
}

// TestAListedEndGivesWayToAFetch: an end listed for a partition that stopped fetching
// counts unless a fetch told the end after it was asked for — the fetch's is newer,
// and lower than the listed one when the log was truncated in between.
func TestAListedEndGivesWayToAFetch(t *testing.T) {
	p := testPartition()
	lag := func() float64 { return testutil.ToFloat64(p.gauges.LagRecords) }
	asked := time.Now()
	p.sawEnd(40)
	p.listedEnd(90, asked)
	if lag() != 40 {
		t.Errorf("lag_records %v, want 40: an end listed before the fetch's replaced it", lag())
	}
	p.listedEnd(90, time.Now())
	if lag() != 90 {
		t.Errorf("lag_records %v, want 90: the end listed after the last fetch was not taken", lag())
	}
}

// TestPausedReasonNamesTheLowestHold: of the deliveries that hold a partition, the reason
// named is that of the lowest offset, the one its commits wait on, whichever was held
// first (deliveries in parallel fail in any order); holds that say no offset come after,
// the oldest first.
func TestPausedReasonNamesTheLowestHold(t *testing.T) {
	p := testPartition()
	defer p.Hold(errors.New("first"))()
	defer p.Hold(errors.New("second"))()
	if got := p.pausedReason().Error(); got != "first (and 1 more deliveries held)" {
		t.Errorf("reason %q", got)
	}
	defer p.Hold(processor.HeldFrom{First: 20, Err: errors.New("decoding offset 20")})()
	defer p.Hold(processor.HeldFrom{First: 0, Err: errors.New("decoding offset 0")})()
	if got := p.pausedReason().Error(); got != "decoding offset 0 (and 3 more deliveries held)" {
		t.Errorf("reason %q", got)
	}
}

// TestHeldByTellsStorageFromAMessage: the load report says why partitions are held — a
// storage outage, or a message that cannot be decoded or is refused for good with nowhere
// else to go — so that the operator does not call a poison message an outage.
func TestHeldByTellsStorageFromAMessage(t *testing.T) {
	c := New(Settings{}, nil, nil, nil, metrics.New(prometheus.NewRegistry()), logr.Discard())
	a, b := testPartition(), testPartition()
	c.partitions = map[int]*partition{1: a, 2: b}
	if got := c.HeldBy(); got != nil {
		t.Errorf("nothing held: %v", got)
	}
	releaseOutage := a.Hold(fmt.Errorf("otlp/grpc: %w", errors.New("connection refused")))
	releaseDecode := b.Hold(fmt.Errorf("offset 7: %w", failure.Decode(errors.New("not OTLP protobuf"))))
	defer b.Hold(failure.Permanent(errors.New("span too large")))()
	if got := c.HeldBy(); !slices.Equal(got, []string{loadreport.HeldRefused, loadreport.HeldStorage, loadreport.HeldUndecodable}) {
		t.Errorf("got %v", got)
	}
	releaseOutage()
	releaseDecode()
	if got := c.HeldBy(); !slices.Equal(got, []string{loadreport.HeldRefused}) {
		t.Errorf("after the outage and the undecodable message: got %v", got)
	}
}

// TestDeliveriesAreSizedBySpans: the messages of a delivery are counted from the spans per
// message of finished deliveries: few before any is known, the first one's figure as soon
// as it finished (not an average with a guess), then a running average.
func TestDeliveriesAreSizedBySpans(t *testing.T) {
	c := New(Settings{DeliverySpans: 1000}, nil, nil, nil, metrics.New(prometheus.NewRegistry()), logr.Discard())
	if got := c.deliveryMessages(); got != 20 {
		t.Errorf("before anything is known: %d messages, want 20", got)
	}
	c.learn(&processor.Delivery{Messages: make([]kafka.Message, 20), Spans: 20})
	if got := c.deliveryMessages(); got != 1000 {
		t.Errorf("after a delivery of one span a message: %d messages, want 1000", got)
	}
	for range 50 {
		c.learn(&processor.Delivery{Messages: make([]kafka.Message, 100), Spans: 500})
	}
	if got := c.deliveryMessages(); got < 195 || got > 205 {
		t.Errorf("at 5 spans a message: %d messages a delivery, want about 200", got)
	}
}

// TestFetchDeliveryCuts: a run ends at its message count, at its byte bound, and when the
// linger runs out; a fetch cut short by the linger loses no message.
func TestFetchDeliveryCuts(t *testing.T) {
	const topic = "cuts"
	b := kafkatest.Start(t, topic, 1)
	msgs := make([]kafka.Message, 25)
	for i := range msgs {
		msgs[i] = kafka.Message{Value: fmt.Appendf(nil, "message-%02d", i)}
	}
	b.Produce(t, topic, msgs...)
	c := New(Settings{DeliverySpans: 10, DeliveryBytes: 1 << 20, Linger: 200 * time.Millisecond},
		nil, nil, nil, metrics.New(prometheus.NewRegistry()), logr.Discard())
	c.learn(&processor.Delivery{Messages: make([]kafka.Message, 1), Spans: 1}) // one span a message
	fetch := testFetcher(t, b, topic, 0, 0)
	ctx := context.Background()

	var sizes []int
	var next int64
	for range 3 {
		start := time.Now()
		d, _, err := c.fetchDelivery(ctx, fetch, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range d {
			if m.Offset != next {
				t.Fatalf("offset %d after %d: a message was lost or repeated between deliveries", m.Offset, next-1)
			}
			next++
		}
		sizes = append(sizes, len(d))
		if len(d) == 5 && time.Since(start) < 150*time.Millisecond {
			t.Errorf("the short last delivery was cut before the linger")
		}
	}
	if fmt.Sprint(sizes) != "[10 10 5]" {
		t.Errorf("deliveries of %v messages, want [10 10 5]", sizes)
	}

	// The byte bound: messages of 10 bytes, at most 25 bytes a delivery → 3 messages.
	b.Produce(t, topic, msgs[:6]...)
	c.s.DeliveryBytes = 25
	d, _, err := c.fetchDelivery(ctx, fetch, nil)
	if err != nil || len(d) != 3 {
		t.Errorf("with a 25-byte bound: %d messages (err %v), want 3", len(d), err)
	}
}

// TestADeliveryWaitingForMoreHoldsNoResponse: a delivery that has taken all its
// partition's last response held and waits for the next fetch keeps none of that
// response. Most of a response and at least three quarters full, it is handed over at
// once (batches of 8 messages of 30 KB, one a response, 10 a delivery: 8 each, none
// waiting for the linger, where it took 2 of the next); less full, it waits for the next
// response holding this one and fills (batches of 6: 10, then 2 + 6 = 8 handed over);
// a small part of its response, it moves its messages into its own memory as it waits
// and still fills (batches of 4 messages of 1 KB: 10, 10), holding only the response it
// is taking from.
func TestADeliveryWaitingForMoreHoldsNoResponse(t *testing.T) {
	const topic = "waiting"
	b := kafkatest.Start(t, topic, 1)
	batch := func(n, size, from int) []kafka.Message {
		msgs := make([]kafka.Message, n)
		for i := range msgs {
			msgs[i] = kafka.Message{Value: fmt.Appendf(bytes.Repeat([]byte{'.'}, size), "%d", from+i)}
		}
		return msgs
	}
	for i := range 3 {
		b.Produce(t, topic, batch(8, 30<<10, i*8)...)
	}
	for i := range 3 {
		b.Produce(t, topic, batch(6, 30<<10, 24+i*6)...)
	}
	for i := range 6 {
		b.Produce(t, topic, batch(4, 1<<10, 42+i*4)...)
	}
	const linger = 2 * time.Second
	c := New(Settings{DeliverySpans: 10, DeliveryBytes: 10 << 20, Linger: linger},
		nil, nil, nil, metrics.New(prometheus.NewRegistry()), logr.Discard())
	c.learn(&processor.Delivery{Messages: make([]kafka.Message, 1), Spans: 1}) // one span a message
	fetch := testFetcher(t, b, topic, 0, 0)
	fetch.maxBytes = 1 // a response is one batch
	ctx := context.Background()
	fetched := func(a *arena) (n int) {
		for _, h := range a.held {
			if h.pool != &copyChunks {
				n++
			}
		}
		return n
	}
	var next int
	deliver := func() (int, *arena) {
		start := time.Now()
		d, backing, err := c.fetchDelivery(ctx, fetch, nil)
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > linger/2 {
			t.Errorf("the delivery of %d messages from %d waited for the linger", len(d), next)
		}
		for _, m := range d {
			if m.Offset != int64(next) || !bytes.HasSuffix(m.Value, fmt.Appendf(nil, ".%d", next)) || len(m.Value) < 1<<10 {
				t.Fatalf("offset %d read as offset %d, %d bytes ending %q", next, m.Offset, len(m.Value), m.Value[max(len(m.Value)-8, 0):])
			}
			next++
		}
		return len(d), backing
	}
	for range 3 {
		if n, backing := deliver(); n != 8 || fetched(backing) != 1 {
			t.Errorf("a delivery of %d messages holding %d responses, want 8 messages of one", n, fetched(backing))
		}
	}
	for _, want := range []int{10, 8} {
		if n, _ := deliver(); n != want {
			t.Errorf("a delivery of %d messages from responses of 6, want %d", n, want)
		}
	}
	for range 2 {
		n, backing := deliver()
		if n != 10 || fetched(backing) > 1 {
			t.Errorf("a delivery of %d messages holding %d responses, want 10 holding at most the one it took its last from", n, fetched(backing))
		}
		backing.release()
	}
}

// testFetcher reads a partition of the broker from offset on.
func testFetcher(t *testing.T, b *kafkatest.Broker, topic string, partition int, offset int64) *fetcher {
	transport := &kafka.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	client := &kafka.Client{Addr: kafka.TCP(b.Addr), Transport: transport}
	return &fetcher{client: client, leaders: newLeaders(client, func() *kafka.Transport { return &kafka.Transport{} }),
		topic: topic, partition: partition, minBytes: 1, maxBytes: 10 << 20, offset: offset}
}

// TestFetcherKeepsWhatTheMessagesCarry: keys, values, headers, times and offsets come out
// as produced, in batches fetched whole; a fetcher told the last offset reads only what is
// produced after it started, and one told the first reads from the beginning.
func TestFetcherKeepsWhatTheMessagesCarry(t *testing.T) {
	const topic = "carry"
	b := kafkatest.Start(t, topic, 1)
	at := time.UnixMilli(1_780_000_000_000)
	var msgs []kafka.Message
	for i := range 300 {
		m := kafka.Message{Key: fmt.Appendf(nil, "key-%d", i), Value: bytes.Repeat([]byte{byte(i)}, 100+i), Time: at.Add(time.Duration(i) * time.Millisecond)}
		if i%3 == 0 {
			m.Headers = []kafka.Header{{Key: "content-type", Value: []byte("application/x-protobuf")}, {Key: "n", Value: fmt.Appendf(nil, "%d", i)}}
		}
		msgs = append(msgs, m)
	}
	b.Produce(t, topic, msgs[:200]...)
	latest := testFetcher(t, b, topic, 0, kafka.LastOffset)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := latest.fill(ctx, 50*time.Millisecond); err != nil || len(latest.queue) != 0 || latest.offset != 200 {
		t.Fatalf("from the last offset before anything new: %d queued, offset %d, err %v; want none at 200", len(latest.queue), latest.offset, err)
	}
	b.Produce(t, topic, msgs[200:]...)

	for _, tc := range []struct {
		f    *fetcher
		from int
	}{{testFetcher(t, b, topic, 0, kafka.FirstOffset), 0}, {latest, 200}, {testFetcher(t, b, topic, 0, 150), 150}} {
		for i := tc.from; i < len(msgs); i++ {
			got, err := tc.f.next(ctx, 100*time.Millisecond, nil)
			if err != nil {
				t.Fatalf("from %d: message %d: %v", tc.from, i, err)
			}
			want := msgs[i]
			if got.Offset != int64(i) || got.Partition != 0 || got.Topic != topic || !bytes.Equal(got.Key, want.Key) ||
				!bytes.Equal(got.Value, want.Value) || !got.Time.Equal(want.Time) || got.HighWaterMark != 300 ||
				fmt.Sprint(got.Headers) != fmt.Sprint(want.Headers) {
				t.Fatalf("from %d: message %d came as offset %d key %q, %d bytes, %v, %v, high watermark %d",
					tc.from, i, got.Offset, got.Key, len(got.Value), got.Time, got.Headers, got.HighWaterMark)
			}
		}
	}
}

// TestFetcherReadsCompressedBatches: producers compress (the Collector's Kafka exporter
// and Jaeger's default to none, but many set gzip, snappy, lz4 or zstd); every codec's
// batches come out as the messages produced.
func TestFetcherReadsCompressedBatches(t *testing.T) {
	const topic = "compressed"
	b := kafkatest.Start(t, topic, 1)
	var want [][]byte
	for _, codec := range []kafka.Compression{kafka.Gzip, kafka.Snappy, kafka.Lz4, kafka.Zstd} {
		var msgs []kafka.Message
		for i := range 50 {
			value := fmt.Appendf(nil, "%s message %d %s", codec, i, bytes.Repeat([]byte("span "), i))
			msgs = append(msgs, kafka.Message{Value: value})
			want = append(want, value)
		}
		transport := &kafka.Transport{}
		w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: topic, Transport: transport, Compression: codec,
			RequiredAcks: kafka.RequireAll, BatchSize: len(msgs), BatchTimeout: 10 * time.Millisecond}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(codec, err)
		}
		_ = w.Close()
		transport.CloseIdleConnections()
	}
	f := testFetcher(t, b, topic, 0, kafka.FirstOffset)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, value := range want {
		m, err := f.next(ctx, 100*time.Millisecond, nil)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.Offset != int64(i) || !bytes.Equal(m.Value, value) {
			t.Fatalf("message %d came as offset %d: %q", i, m.Offset, m.Value)
		}
	}
}

// TestFetcherSkipsTransactionMarkers: a transactional producer's commit leaves a control
// record in the log; it is no message: the fetcher passes over its offset.
func TestFetcherSkipsTransactionMarkers(t *testing.T) {
	const topic = "transactions"
	b := kafkatest.Start(t, topic, 1)
	producer, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.TransactionalID("spanflow-test"), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := producer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "in a transaction %d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := producer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	b.Produce(t, topic, kafka.Message{Value: []byte("after it")})

	got := readMessages(ctx, t, testFetcher(t, b, topic, 0, kafka.FirstOffset), 4)
	if want := "[0:in a transaction 0 1:in a transaction 1 2:in a transaction 2 4:after it]"; got != want {
		t.Errorf("read %v, want %s (offset 3 is the commit marker)", got, want)
	}
}

// TestFetcherFollowsTheLeader: when the partition's leadership moves to another broker,
// fetches fail until the client's metadata knows it, then go on from where they were:
// nothing lost, nothing twice.
func TestFetcherFollowsTheLeader(t *testing.T) {
	const topic = "moving"
	b := kafkatest.Start(t, topic, 1, kfake.NumBrokers(3))
	produce := func(from, n int) {
		for i := from; i < from+n; i++ {
			b.Produce(t, topic, kafka.Message{Value: fmt.Appendf(nil, "%d", i)})
		}
	}
	produce(0, 50)
	f := testFetcher(t, b, topic, 0, kafka.FirstOffset)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	failures, moved := 0, false
	for want := 0; want < 100; {
		if want == 50 && !moved { // once: a failed fetch comes back here
			moved = true
			leader := b.Cluster.LeaderFor(topic, 0)
			if err := b.Cluster.MoveTopicPartition(topic, 0, (leader+1)%3); err != nil {
				t.Fatal(err)
			}
			produce(50, 50)
		}
		m, err := f.next(ctx, 100*time.Millisecond, nil)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("stuck at %d after %d failed fetches: %v", want, failures, err)
			}
			failures++
			time.Sleep(100 * time.Millisecond) // as the consumer waits between failed fetches
			continue
		}
		if string(m.Value) != fmt.Sprint(want) || m.Offset != int64(want) {
			t.Fatalf("message %d came as %q at offset %d", want, m.Value, m.Offset)
		}
		want++
	}
	t.Logf("%d fetches failed while the leadership moved", failures)
}

// TestFetcherStopsAtACorruptBatch: a record batch whose bytes changed on their way (one
// bit flipped in a value) is refused for its CRC: nothing of it is handed over and the
// offset stays at it, so the next fetch, with the broker's bytes intact, reads every
// message once; the whole batches before it are handed over. A response holding only part
// of a batch is an error too, not a fetch repeated at once.
func TestFetcherStopsAtACorruptBatch(t *testing.T) {
	const topic = "corrupt"
	b := kafkatest.Start(t, topic, 1)
	b.Produce(t, topic, kafka.Message{Value: []byte("first")}, kafka.Message{Value: []byte("second")})
	b.Produce(t, topic, kafka.Message{Value: []byte("third")})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&fetchwire.Dialer{}).Dial(ctx, b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	res, err := conn.Fetch(ctx, fetchwire.FetchRequest{Topic: topic, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond}, nil)
	_ = conn.Close()
	if err != nil || res.Error != nil {
		t.Fatal(err, res.Error)
	}
	whole := bytes.Clone(res.Records)
	secondBatch := bytes.LastIndex(whole, []byte("second")) + len("second")
	corruptThird := bytes.Clone(whole)
	corruptThird[bytes.LastIndex(corruptThird, []byte("third"))] ^= 0x01 // "uhird"
	corruptFirst := bytes.Clone(whole)
	corruptFirst[bytes.Index(corruptFirst, []byte("first"))] ^= 0x01
	serve := func(records []byte) { answerOneFetch(b, topic, 0, 3, records) }
	readAll := func(f *fetcher) string { return readMessages(ctx, t, f, 3) }
	const want = "[0:first 1:second 2:third]"

	for _, tc := range []struct {
		name           string
		served         []byte
		queued, offset int
		err            string
	}{
		{"the first batch corrupt", corruptFirst, 0, 0, "corrupt"},
		{"the second batch corrupt", corruptThird, 2, 2, "corrupt"},
		{"part of the first batch", whole[:secondBatch-3], 0, 0, "only part of a record batch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serve(tc.served)
			f := testFetcher(t, b, topic, 0, 0)
			err := f.fill(ctx, 100*time.Millisecond)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("fetched with %v; want an error saying %q", err, tc.err)
			}
			if len(f.queue) != tc.queued || f.offset != int64(tc.offset) {
				t.Fatalf("%d queued, offset %d; want %d queued, offset %d", len(f.queue), f.offset, tc.queued, tc.offset)
			}
			if got := readAll(f); got != want {
				t.Errorf("then read %v, want %s", got, want)
			}
		})
	}
	// Through next, a batch refused after whole ones holds nothing up: they are handed
	// over at once, the failure coming back with the fetch after them.
	serve(corruptThird)
	if got := readAll(testFetcher(t, b, topic, 0, 0)); got != want {
		t.Errorf("read %v, want %s", got, want)
	}
}

// TestFetcherAsksForTheLeaderAfterALeadershipError: a broker that says it no longer
// leads the partition, or a leader that cannot be reached, has the fetcher drop its
// connection and ask the brokers themselves where the partition is led (kafka-go's client
// answers from a cache of seconds); an offset out of range does not.
func TestFetcherAsksForTheLeaderAfterALeadershipError(t *testing.T) {
	const topic = "leadership"
	b := kafkatest.Start(t, topic, 1)
	b.Produce(t, topic, kafka.Message{Value: []byte("one")})
	answer := func(code int16) { answerOneFetch(b, topic, code, 1, nil) }
	f := testFetcher(t, b, topic, 0, 0)
	asked := 0
	f.leaders.transport = func() *kafka.Transport { asked++; return &kafka.Transport{} }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answer(kerr.NotLeaderForPartition.Code)
	if err := f.fill(ctx, 100*time.Millisecond); !errors.Is(err, kafka.NotLeaderForPartition) || asked != 0 || f.conn != nil {
		t.Fatalf("told the broker no longer leads: %v, the brokers asked %d times, connection kept %t", err, asked, f.conn != nil)
	}
	if m, err := f.next(ctx, 100*time.Millisecond, nil); err != nil || string(m.Value) != "one" || asked != 1 {
		t.Fatalf("then read %q, %v, the brokers asked %d times (want 1)", m.Value, err, asked)
	}
	f.offset = 5 // past the end
	answer(kerr.OffsetOutOfRange.Code)
	_ = f.fill(ctx, 100*time.Millisecond)
	if f.staleLeader || f.conn == nil {
		t.Errorf("an offset out of range dropped the leader")
	}

	// A leader that cannot be reached (here: spoken to in TLS, which it does not speak).
	f = testFetcher(t, b, topic, 0, 0)
	f.dialer = &fetchwire.Dialer{TLS: &tls.Config{MinVersion: tls.VersionTLS12}, Timeout: 300 * time.Millisecond}
	if err := f.fill(ctx, 100*time.Millisecond); err == nil || !f.staleLeader {
		t.Errorf("a leader that could not be reached: %v, stale %t", err, f.staleLeader)
	}
}

// TestLeadersFromTheBrokersAreShared: the partitions that fail at once (a broker
// restarted) share one lookup from the brokers for a second, rather than each opening a
// connection to ask; the lookups that follow no failure use the client's.
func TestLeadersFromTheBrokersAreShared(t *testing.T) {
	const topic = "shared"
	b := kafkatest.Start(t, topic, 3)
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	asked := 0
	l := newLeaders(&kafka.Client{Addr: kafka.TCP(b.Addr), Transport: transport},
		func() *kafka.Transport { asked++; return &kafka.Transport{} })
	ctx := context.Background()
	for range 10 {
		if res, err := l.metadata(ctx, topic, true); err != nil || len(res.Topics) != 1 || len(res.Topics[0].Partitions) != 3 {
			t.Fatalf("%+v, %v", res, err)
		}
	}
	if _, err := l.metadata(ctx, topic, false); err != nil || asked != 1 {
		t.Errorf("asked the brokers %d times for 10 stale lookups and one not (err %v), want 1", asked, err)
	}
	l.freshAt = l.freshAt.Add(-freshFor)
	if _, err := l.metadata(ctx, topic, true); err != nil || asked != 2 {
		t.Errorf("asked the brokers %d times once the lookup was a second old, want 2", asked)
	}

	// Brokers out of reach: the partitions failing within a second share the failure.
	gone := newLeaders(&kafka.Client{Addr: kafka.TCP("127.0.0.1:1"), Transport: transport},
		func() *kafka.Transport { asked++; return &kafka.Transport{DialTimeout: time.Second} })
	asked = 0
	for range 3 {
		if _, err := gone.metadata(ctx, topic, true); err == nil {
			t.Fatal("brokers out of reach answered")
		}
	}
	if asked != 1 {
		t.Errorf("brokers out of reach asked %d times by 3 partitions failing at once, want 1", asked)
	}

	// A partition whose generation ends while another asks stops waiting.
	l.turn <- struct{}{} // another partition is asking
	ended, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	l.freshAt = l.freshAt.Add(-freshFor)
	if _, err := l.metadata(ended, topic, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting for another's lookup past its end: %v", err)
	}
	<-l.turn
}

// answerOneFetch has the broker answer the next fetch of topic's partition 0 itself, with
// code and records (raw record batches) up to highWatermark; the fetches after it are
// the broker's own.
func answerOneFetch(b *kafkatest.Broker, topic string, code int16, highWatermark int64, records []byte) {
	b.Cluster.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.SetVersion(req.GetVersion())
		part := kmsg.NewFetchResponseTopicPartition()
		part.ErrorCode, part.HighWatermark, part.LastStableOffset, part.RecordBatches = code, highWatermark, highWatermark, records
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic, rt.Partitions = topic, []kmsg.FetchResponseTopicPartition{part}
		resp.Topics = []kmsg.FetchResponseTopic{rt}
		return resp, nil, true
	})
}

// readMessages reads n messages with f and returns them as "offset:value" in a list.
func readMessages(ctx context.Context, t *testing.T, f *fetcher, n int) string {
	t.Helper()
	return fmt.Sprint(readAs(ctx, t, f, n, func(m kafka.Message) string { return fmt.Sprintf("%d:%s", m.Offset, m.Value) }))
}

// readAs reads n messages with f and returns each as show shows it.
func readAs(ctx context.Context, t *testing.T, f *fetcher, n int, show func(kafka.Message) string) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		m, err := f.next(ctx, 100*time.Millisecond, nil)
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		got = append(got, show(m))
	}
	return got
}

// TestFetcherGivesUpOnASilentBroker: a broker that takes a fetch and never answers (nor
// closes the connection) does not hold the partition past the fetch's wait and its grace.
func TestFetcherGivesUpOnASilentBroker(t *testing.T) {
	const topic = "silent"
	b := kafkatest.Start(t, topic, 1)
	b.Produce(t, topic, kafka.Message{Value: []byte("unread")})
	b.SilenceFetches(t)
	f := testFetcher(t, b, topic, 0, 0)
	f.grace = time.Second
	start := time.Now()
	err := f.fill(context.Background(), 100*time.Millisecond)
	if took := time.Since(start); err == nil || took > 5*time.Second {
		t.Errorf("a fetch nobody answers returned after %v with %v; want an error after about 1.1 s", took, err)
	}
}

// TestFetcherSkipsWhatRetentionDeleted: an offset the broker no longer has (retention
// deleted the records before they were read) moves to the first it has, and says what was
// lost; it does not stop the partition.
func TestFetcherSkipsWhatRetentionDeleted(t *testing.T) {
	const topic = "retained"
	b := kafkatest.Start(t, topic, 1, kfake.BrokerConfigs(map[string]string{"log.retention.bytes": "2000"}))
	for i := range 20 {
		b.Produce(t, topic, kafka.Message{Value: bytes.Repeat([]byte{byte(i)}, 500)})
	}
	b.Cluster.ApplyRetention()
	f := testFetcher(t, b, topic, 0, 0)
	var lost [2]int64
	f.skipped = func(from, to int64) { lost = [2]int64{from, to} }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := f.next(ctx, 100*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Offset == 0 || lost != [2]int64{0, got.Offset} || got.Value[0] != byte(got.Offset) {
		t.Errorf("after retention: first message at offset %d (value of %d), skipped %v; want the first kept, and 0 to it reported",
			got.Offset, got.Value[0], lost)
	}
}

// TestFetcherReadsATruncatedLogAgain: an offset past the end of the log (the log lost
// records read before, in an unclean leader election) is read again from the first record
// the broker has, and said; it is not waited at until the log grows past it, which would
// pass over every record produced until then.
func TestFetcherReadsATruncatedLogAgain(t *testing.T) {
	const topic = "truncated"
	b := kafkatest.Start(t, topic, 1)
	for i := range 5 {
		b.Produce(t, topic, kafka.Message{Value: fmt.Appendf(nil, "%d", i)})
	}
	f := testFetcher(t, b, topic, 0, 50)
	var said [3]int64
	f.truncated = func(offset, first, last int64) { said = [3]int64{offset, first, last} }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got := readMessages(ctx, t, f, 5); got != "[0:0 1:1 2:2 3:3 4:4]" {
		t.Errorf("read %s from a log that ends before the offset", got)
	}
	if said != [3]int64{50, 0, 5} {
		t.Errorf("said %v, want offset 50, log start 0, end 5", said)
	}
}

// TestATruncatedLogIsReadAgainOnceTheDeliveriesBeforeAreDone: the log is found to end
// before the fetch offset (truncated) while the deliveries of the offsets it lost are in
// flight. The deliveries of the log read again, from its start, repeat their offsets:
// they are handed over only once those before are finished (a partition's deliveries are
// tracked, and their bytes held, by their first offset), and the offset is then committed
// to the log's end.
func TestATruncatedLogIsReadAgainOnceTheDeliveriesBeforeAreDone(t *testing.T) {
	const topic, group = "truncated-in-flight", "truncated-in-flight"
	b := kafkatest.Start(t, topic, 1)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 6, 1)...)
	k := quickKafka(b, topic, group)
	k.CommitInterval = config.Duration(50 * time.Millisecond)
	held := make(chan *processor.Delivery, 100)
	chain := processor.Func(func(_ context.Context, d *processor.Delivery) error {
		d.Spans = len(d.Messages)
		held <- d // finished by the test
		return nil
	})
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	c := New(Settings{Kafka: k, DeliverySpans: 100, DeliveryBytes: 1 << 20, Linger: 10 * time.Millisecond, DrainTimeout: time.Second},
		kafka.DefaultDialer, &kafka.Client{Addr: kafka.TCP(b.Addr), Transport: transport}, chain, metrics.New(prometheus.NewRegistry()), logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	// Deliveries of two messages each, none finished.
	var before []*processor.Delivery
	for n := 0; n < 6; {
		select {
		case d := <-held:
			before = append(before, d)
			n += len(d.Messages)
		case <-time.After(10 * time.Second):
			t.Fatal("the first deliveries were not handed over")
		}
	}
	// The next fetch, at 6, is out of range, and the log ends at 4.
	var listed atomic.Int32
	b.Cluster.ControlKey(int16(kmsg.ListOffsets), func(req kmsg.Request) (kmsg.Response, error, bool) {
		b.Cluster.KeepControl()
		if listed.Add(1) > 2 { // kafka-go asks for the first offset, then for the end
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		resp.SetVersion(req.GetVersion())
		for _, rt := range req.(*kmsg.ListOffsetsRequest).Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition, sp.Offset, sp.Timestamp = rp.Partition, 4, -1
				if rp.Timestamp == -2 {
					sp.Offset = 0
				}
				sp.OldStyleOffsets = []int64{sp.Offset}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	answerOneFetch(b, topic, kerr.OffsetOutOfRange.Code, 4, nil)
	select {
	case d := <-held:
		t.Fatalf("offsets %d to %d handed over again while those read before are in flight", d.First(), d.Last())
	case <-time.After(2 * time.Second):
	}
	if listed.Load() == 0 {
		t.Fatal("the fetch out of range did not happen")
	}
	for i := len(before) - 1; i >= 0; i-- {
		before[i].Partition.Done(before[i])
	}
	var again []*processor.Delivery
	for n := 0; n < 6; {
		select {
		case d := <-held:
			again = append(again, d)
			n += len(d.Messages)
		case <-time.After(10 * time.Second):
			t.Fatal("the log was not read again")
		}
	}
	if again[0].First() != 0 {
		t.Errorf("read again from %d, want 0", again[0].First())
	}
	for i := len(again) - 1; i >= 0; i-- {
		again[i].Partition.Done(again[i])
	}
	waitAllCommitted(t, b, topic, group, 1, 10*time.Second, "the deliveries of the log read again were not committed")
}

// TestConsumerHandsOverDeliveriesAndCommits runs the consumer against the broker with a
// chain that finishes every delivery: every message arrives once, in order per partition,
// and the offsets are committed to the end soon after.
func TestConsumerHandsOverDeliveriesAndCommits(t *testing.T) {
	const topic, group, partitions = "spans", "unit", 3
	b := kafkatest.Start(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 600, 1)...)
	k := quickKafka(b, topic, group)
	k.CommitInterval = config.Duration(time.Hour) // commits come from finished deliveries, not the ticker

	seen := make(chan kafka.Message, 1000)
	chain := processor.Func(func(_ context.Context, d *processor.Delivery) error {
		for _, m := range d.Messages {
			seen <- m
		}
		d.Spans = len(d.Messages)
		d.Partition.Done(d)
		return nil
	})
	transport := &kafka.Transport{} // metadata and commits; its connections are closed at the end
	defer transport.CloseIdleConnections()
	c := New(Settings{Kafka: k, DeliverySpans: 100, DeliveryBytes: 1 << 20, Linger: 50 * time.Millisecond, DrainTimeout: time.Second},
		kafka.DefaultDialer, &kafka.Client{Addr: kafka.TCP(b.Addr), Transport: transport}, chain, metrics.New(prometheus.NewRegistry()), logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	expectInOrder(t, seen, 600)
	waitAllCommitted(t, b, topic, group, partitions, 10*time.Second, "finished deliveries were not committed")
	if err := c.Ready(); err != nil {
		t.Errorf("Ready: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// TestHoldCancelsTheFetch: the context a partition is fetched with ends when a delivery
// holds it, so that a fetch waiting for new messages hands none over; once every hold is
// released, fetching starts again with a live context.
func TestHoldCancelsTheFetch(t *testing.T) {
	p := testPartition()
	fetchCtx, err := p.fetching(context.Background())
	if err != nil || fetchCtx.Err() != nil {
		t.Fatalf("an unheld partition: %v, %v", err, fetchCtx.Err())
	}
	release := p.Hold(errors.New("offset 5: refused"))
	if fetchCtx.Err() == nil {
		t.Fatal("the fetch goes on while the partition is held")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.fetching(ctx); err == nil {
		t.Fatal("fetching started while the partition is held")
	}
	release()
	if fetchCtx, err = p.fetching(context.Background()); err != nil || fetchCtx.Err() != nil {
		t.Fatalf("after the release: %v, %v", err, fetchCtx.Err())
	}
}

// TestAnOutageIsTwoLinesNotTwoPerPartition: storage down holds every partition within
// seconds, each for the same reason. The first pause is an error line at once, the
// others one line that counts them; the same for the resumes (before, 96 partitions
// wrote 96 error lines, and 96 more as they resumed).
func TestAnOutageIsTwoLinesNotTwoPerPartition(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	log := funcr.New(func(_, args string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, args)
	}, funcr.Options{})
	said := newHoldLogs(log)
	m := metrics.New(prometheus.NewRegistry())
	outage := errors.New("otlp/grpc: rpc error: code = Unavailable desc = connection refused")
	var releases []func()
	for id := range 96 {
		p := newPartition(kafka.PartitionAssignment{ID: id, Offset: 0}, m.ForPartition(id), log, said,
			make(chan struct{}), make(chan struct{}, 1), func(*processor.Delivery) {})
		releases = append(releases, p.Hold(processor.HeldFrom{First: 10, Err: outage}), p.Hold(processor.HeldFrom{First: 20, Err: outage}))
	}
	for _, release := range releases {
		release()
	}
	said.Close()
	count := func(msg string) (n int, all string) {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range lines {
			if strings.Contains(l, `"msg"="`+msg) {
				n++
				all += l + "\n"
			}
		}
		return n, all
	}
	for msg, level := range map[string]string{"Partition paused": `"error"="otlp/grpc: rpc error`, "Partition resumed": `"count"=95`} {
		if n, all := count(msg); n != 2 || !strings.Contains(all, `"count"=1`) || !strings.Contains(all, `"count"=95`) || !strings.Contains(all, level) {
			t.Errorf("%d lines %q for 96 partitions, want the first and one counting the other 95:\n%s", n, msg, all)
		}
	}
}

// TestHeldDeliveriesPauseUntilBothAreWritten: two deliveries of one partition, each with
// a message storage refuses (no dead-letter topic), go through the failure policy and
// both hold the partition. When storage takes the first one's message, the partition
// stays paused — not ready, not fetched — for the second; when it takes that one too,
// it resumes. One log line for the pause, one for the resume.
func TestHeldDeliveriesPauseUntilBothAreWritten(t *testing.T) {
	var mu sync.Mutex
	var paused, resumed int
	log := funcr.New(func(_, args string) {
		mu.Lock()
		defer mu.Unlock()
		paused += strings.Count(args, `"msg"="Partition paused`)
		resumed += strings.Count(args, `"msg"="Partition resumed"`)
	}, funcr.Options{})
	m := metrics.New(prometheus.NewRegistry())
	p := newPartition(kafka.PartitionAssignment{ID: 3, Offset: 0}, m.ForPartition(3), log, newHoldLogs(log),
		make(chan struct{}), make(chan struct{}, 1), func(*processor.Delivery) {})

	// Offsets 0–1 and 2–3; storage refuses the traces of offsets 1 and 2 until told.
	msgs := kafkatest.OTLPProtoMessages(t, 0, 4, 1)
	for i := range msgs {
		msgs[i].Partition, msgs[i].Offset = 3, int64(i)
	}
	trace := func(i int) pcommon.TraceID {
		return kafkatest.Traces(uint64(i), 1).ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
	}
	mem := store.NewMemory()
	refuse := func(offsets ...int) {
		mem.RefuseWhen(func(k store.SpanKey) error {
			for _, o := range offsets {
				if k.Trace == trace(o) {
					return failure.Permanent(fmt.Errorf("span of offset %d refused", o))
				}
			}
			return nil
		})
	}
	refuse(1, 2)
	decoder, err := decode.New(config.EncodingOTLPProto)
	if err != nil {
		t.Fatal(err)
	}
	quiet := eventlog.Info(logr.Discard(), "", time.Hour)
	chain := processor.NewCommitting(processor.NewFailurePolicy(
		processor.NewRetry(processor.NewBase(decoder, mem, 1000, 0, m, quiet), processor.Backoff{Min: time.Millisecond, Max: time.Millisecond, Attempts: 2}, nil),
		processor.Policy{OnDecodeError: config.OnDecodeErrorFail, Backoff: processor.Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond}},
		m, processor.PolicyLogs{DeadLettered: quiet, Skipped: quiet}))
	process := func(msgs []kafka.Message) <-chan error {
		d := processor.NewDelivery(p, msgs)
		p.tracker.Begin(d.First(), d.Last())
		done := make(chan error, 1)
		go func() { done <- chain.Process(context.Background(), d) }()
		return done
	}
	first, second := process(msgs[0:2]), process(msgs[2:4])

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	isPaused := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_, err := p.fetching(ctx)
		return p.pausedReason() != nil && err != nil && testutil.ToFloat64(p.gauges.Paused) == 1
	}
	waitFor("both deliveries to hold the partition", func() bool {
		r := p.pausedReason()
		return r != nil && strings.Contains(r.Error(), "and 1 more deliveries held")
	})

	refuse(2)
	if err := <-first; err != nil {
		t.Fatalf("the first delivery: %v", err)
	}
	if !isPaused() {
		t.Fatal("the partition resumed while the second delivery still holds it")
	}
	if r := p.pausedReason().Error(); !strings.Contains(r, "offset 2") || strings.Contains(r, "more deliveries") {
		t.Errorf("paused for %q, want the second delivery's message at offset 2 alone", r)
	}
	if c := p.tracker.Committable(); c != 2 {
		t.Errorf("committable %d with the first delivery written, want 2", c)
	}

	refuse()
	if err := <-second; err != nil {
		t.Fatalf("the second delivery: %v", err)
	}
	if p.pausedReason() != nil || testutil.ToFloat64(p.gauges.Paused) != 0 {
		t.Errorf("still paused (%v) with both deliveries written", p.pausedReason())
	}
	if fetchCtx, err := p.fetching(context.Background()); err != nil || fetchCtx.Err() != nil {
		t.Errorf("not fetched again with both deliveries written: %v", err)
	}
	if c := p.tracker.Committable(); c != 4 {
		t.Errorf("committable %d with both deliveries written, want 4", c)
	}
	if distinct, _ := mem.Counts(); distinct != 4 {
		t.Errorf("%d spans stored, want 4", distinct)
	}
	mu.Lock()
	defer mu.Unlock()
	if paused != 1 || resumed != 1 {
		t.Errorf("%d lines for the pause and %d for the resume, want one each", paused, resumed)
	}
}

// TestReportRefusedForItsSizeStillCommits: brokers whose offset.metadata.max.bytes is
// smaller than a load report refuse the commit that carries it; the report partition's
// offset is committed without the report, and the consumer still commits to the end.
func TestReportRefusedForItsSizeStillCommits(t *testing.T) {
	b, stop := startReportConsumer(t, "small-metadata", kerr.OffsetMetadataTooLarge, &kafka.Transport{}, nil)
	waitAllCommitted(t, b, reportTopic, "small-metadata", reportPartitions, 20*time.Second, "the refused report held the offsets back")
	stop()
}

// closeCounter is a transport that counts how often its connections were dropped.
type closeCounter struct {
	*kafka.Transport
	closes atomic.Int32
}

func (c *closeCounter) CloseIdleConnections() {
	c.closes.Add(1)
	c.Transport.CloseIdleConnections()
}

// TestFailedReportsLeaveTheFetchesAlone: a failed load-report commit drops the report
// client's connections (they may know a stale cluster), never those of the client the
// fetchers ask for their leaders and offsets (the fetches' own connections are the
// fetchers').
func TestFailedReportsLeaveTheFetchesAlone(t *testing.T) {
	const topic, group, partitions = reportTopic, "failing-reports", reportPartitions
	fetches, reports := &closeCounter{Transport: &kafka.Transport{}}, &closeCounter{Transport: &kafka.Transport{}}
	defer fetches.Transport.CloseIdleConnections()
	defer reports.Transport.CloseIdleConnections()
	b, stop := startReportConsumer(t, group, kerr.CoordinatorLoadInProgress, fetches, &kafka.Client{Transport: reports})
	deadline := time.Now().Add(20 * time.Second)
	for {
		end, committed := b.EndOffsets(t, topic, partitions), b.CommittedOffsets(t, group, topic, partitions)
		// The report partition (the lowest, 0) is never committed; the others are.
		if reports.closes.Load() >= 2 && end[1] == committed[1] && end[2] == committed[2] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed %v of %v, the report transport reset %d times", committed, end, reports.closes.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if n := fetches.closes.Load(); n != 0 {
		t.Errorf("the fetches' connections were dropped %d times after failed report commits", n)
	}
}

// refuseReportCommits makes the broker answer every commit that carries metadata (a load
// report) with code for each of its partitions; the others it handles itself.
func refuseReportCommits(b *kafkatest.Broker, code *kerr.Error) {
	b.Cluster.ControlKey(int16(kmsg.OffsetCommit), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		b.Cluster.KeepControl()
		req := kreq.(*kmsg.OffsetCommitRequest)
		report := false
		for _, rt := range req.Topics {
			for _, p := range rt.Partitions {
				report = report || (p.Metadata != nil && *p.Metadata != "")
			}
		}
		if !report {
			return nil, nil, false // the broker's own handling
		}
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		resp.SetVersion(req.GetVersion())
		for _, rt := range req.Topics {
			topic := kmsg.NewOffsetCommitResponseTopic()
			topic.Topic = rt.Topic
			for _, p := range rt.Partitions {
				part := kmsg.NewOffsetCommitResponseTopicPartition()
				part.Partition, part.ErrorCode = p.Partition, code.Code
				topic.Partitions = append(topic.Partitions, part)
			}
			resp.Topics = append(resp.Topics, topic)
		}
		return resp, nil, true
	})
}

// The report tests' topic: 300 messages on 3 partitions.
const (
	reportTopic      = "spans"
	reportPartitions = 3
)

// startReportConsumer runs a consumer of the report tests' topic in group, its deliveries
// finished at once, its load reports committed every 200 ms (through reportClient when
// set) and refused by the broker with code; stop ends it and checks how Run ended.
func startReportConsumer(t *testing.T, group string, code *kerr.Error, fetch kafka.RoundTripper, reportClient *kafka.Client) (*kafkatest.Broker, func()) {
	t.Helper()
	b := kafkatest.Start(t, reportTopic, reportPartitions)
	refuseReportCommits(b, code)
	b.Produce(t, reportTopic, kafkatest.OTLPProtoMessages(t, 0, 300, 1)...)
	k := quickKafka(b, reportTopic, group)
	k.CommitInterval = config.Duration(100 * time.Millisecond)
	chain := processor.Func(func(_ context.Context, d *processor.Delivery) error {
		d.Spans = len(d.Messages)
		d.Partition.Done(d)
		return nil
	})
	if reportClient != nil {
		reportClient.Addr = kafka.TCP(b.Addr)
	}
	c := New(Settings{Kafka: k, DeliverySpans: 50, DeliveryBytes: 1 << 20, Linger: 50 * time.Millisecond, DrainTimeout: time.Second,
		CommitMetadata: func([]int) string { return "spanflow/1 a report the broker refuses" }, MetadataInterval: 200 * time.Millisecond,
		ReportClient: reportClient},
		kafka.DefaultDialer, &kafka.Client{Addr: kafka.TCP(b.Addr), Transport: fetch}, chain, metrics.New(prometheus.NewRegistry()), logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return b, func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if t, ok := fetch.(*kafka.Transport); ok {
			t.CloseIdleConnections() // a wrapped one is the test's to close (it counts)
		}
	}
}

// readToTheEnd runs a member with settings s until its group committed the end of each of
// the topic's partitions, calls atTheEnd (unless nil) while it still runs, stops it, and
// returns how many distinct messages it handed over.
func readToTheEnd(t *testing.T, b *kafkatest.Broker, s Settings, m *metrics.Metrics, partitions int, atTheEnd func()) int {
	t.Helper()
	var read sync.Map
	chain := processor.Func(func(_ context.Context, d *processor.Delivery) error {
		for _, m := range d.Messages {
			read.Store([2]int64{int64(m.Partition), m.Offset}, true)
		}
		d.Spans = len(d.Messages)
		d.Partition.Done(d)
		return nil
	})
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	c := New(s, kafka.DefaultDialer, &kafka.Client{Addr: kafka.TCP(b.Addr), Transport: transport}, chain, m, logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitAllCommitted(t, b, s.Kafka.Topic, s.Kafka.ConsumerGroup, partitions, 30*time.Second, "not every message was read")
	if atTheEnd != nil {
		atTheEnd()
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
	count := 0
	read.Range(func(any, any) bool { count++; return true })
	return count
}

// waitAllCommitted waits until the group committed every partition to its end, failing
// with why after timeout.
func waitAllCommitted(t *testing.T, b *kafkatest.Broker, topic, group string, partitions int, timeout time.Duration, why string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		end, committed := b.EndOffsets(t, topic, partitions), b.CommittedOffsets(t, group, topic, partitions)
		if fmt.Sprint(end) == fmt.Sprint(committed) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed %v, end %v: %s", committed, end, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNoDeliveryIsFormedWithoutASlot: with one slot and four partitions behind, the
// partitions waiting for the slot have copied nothing out of what they fetched — one
// delivery is formed, the one running — and once the slot frees every message is handed
// over once, in order. (Formed before waiting, each partition held a delivery's bytes
// while it waited: on a pod of many partitions, most of its heap under a backlog.)
func TestNoDeliveryIsFormedWithoutASlot(t *testing.T) {
	const messages = 400
	run := startOneSlot(t, "slots", 4, messages, nil)
	<-run.started
	time.Sleep(300 * time.Millisecond) // every partition has fetched by now; the others wait for the slot
	if formed := deliveriesFormed(t, run.registry); formed != 1 {
		t.Errorf("%d deliveries formed with one slot taken, want 1: partitions copied their messages before a slot was theirs", formed)
	}
	close(run.gate)
	expectInOrder(t, run.seen, messages)
	run.stop()
}

// oneSlotRun is a consumer of a topic preloaded with messages in partitions, whose
// chain is a Parallel of one slot that holds every delivery until gate is closed.
type oneSlotRun struct {
	c        *Consumer
	registry *prometheus.Registry
	gate     chan struct{}
	started  chan int // the partition of each delivery started
	seen     chan kafka.Message
	stop     func()
}

// startOneSlot starts a oneSlotRun; wrap, if set, is the chain made of the Parallel.
func startOneSlot(t *testing.T, topic string, partitions int32, messages int, wrap func(*processor.Parallel) processor.Processor) *oneSlotRun {
	t.Helper()
	b := kafkatest.Start(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, messages, 1)...)
	k := quickKafka(b, topic, topic)
	run := &oneSlotRun{registry: prometheus.NewRegistry(), gate: make(chan struct{}), started: make(chan int, messages),
		seen: make(chan kafka.Message, messages)}
	parallel := processor.NewParallel(processor.Func(func(_ context.Context, d *processor.Delivery) error {
		run.started <- d.Partition.ID()
		<-run.gate
		for _, m := range d.Messages {
			run.seen <- m
		}
		d.Spans = len(d.Messages)
		d.Partition.Done(d)
		return nil
	}), 1, 0, func(*processor.Delivery, error) {})
	var chain processor.Processor = parallel
	if wrap != nil {
		chain = wrap(parallel)
	}
	transport := &kafka.Transport{}
	run.c = New(Settings{Kafka: k, DeliverySpans: 50, DeliveryBytes: 1 << 20, Linger: 50 * time.Millisecond, DrainTimeout: time.Second},
		kafka.DefaultDialer, &kafka.Client{Addr: kafka.TCP(b.Addr), Transport: transport}, chain, metrics.New(run.registry), logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.c.Run(ctx) }()
	run.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		parallel.Close()
		transport.CloseIdleConnections()
	}
	return run
}

// expectInOrder takes n messages from seen and fails unless each partition's come once
// each, in order from offset 0.
func expectInOrder(t *testing.T, seen <-chan kafka.Message, n int) {
	t.Helper()
	next := map[int]int64{}
	for range n {
		select {
		case m := <-seen:
			if m.Offset != next[m.Partition] {
				t.Fatalf("partition %d: offset %d after %d", m.Partition, m.Offset, next[m.Partition]-1)
			}
			next[m.Partition]++
		case <-time.After(30 * time.Second):
			t.Fatal("not every message was handed over")
		}
	}
}

// deliveriesFormed is the count of the delivery_messages histogram.
func deliveriesFormed(t *testing.T, registry *prometheus.Registry) uint64 {
	t.Helper()
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if strings.HasSuffix(f.GetName(), "_delivery_messages") {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatal("no delivery_messages histogram")
	return 0
}

// countingReserver counts the reservations being waited for.
type countingReserver struct {
	*processor.Parallel
	waiting atomic.Int32
}

func (r *countingReserver) Reserve(ctx context.Context, revoked <-chan struct{}) (*processor.Reservation, error) {
	r.waiting.Add(1)
	defer r.waiting.Add(-1)
	return r.Parallel.Reserve(ctx, revoked)
}

// TestAHeldPartitionWaitsForNoSlot: a partition held while it waits for a slot stops
// waiting (it would form a delivery the moment a slot came, to hold it through the
// hold); released, it is consumed to the end like the others, in order.
func TestAHeldPartitionWaitsForNoSlot(t *testing.T) {
	const messages = 200
	var reserver *countingReserver
	run := startOneSlot(t, "held", 2, messages, func(p *processor.Parallel) processor.Processor {
		reserver = &countingReserver{Parallel: p}
		return reserver
	})
	first := <-run.started
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
		}
	}
	// Both wait for the slot: the running delivery's partition for its next, the other.
	waitFor("the partitions never waited for the slot", func() bool { return reserver.waiting.Load() == 2 })
	run.c.mu.Lock()
	other := run.c.partitions[1-first]
	run.c.mu.Unlock()
	release := other.Hold(errors.New("held by the test"))
	waitFor("the held partition still waits for a slot", func() bool { return reserver.waiting.Load() == 1 })
	release()
	close(run.gate)
	expectInOrder(t, run.seen, messages)
	run.stop()
}

// TestANewGroupThatCannotWriteStillReports: a group with nothing committed whose first
// deliveries cannot be written (storage down, or misconfigured, from the start) commits
// where it starts reading at once, and with it the pod's load report: the operator learns
// from it that the pod is held by storage — without it, it sees only a lag that grows, and
// sizes for it. The offset committed is the log's start, where the group reads from.
func TestANewGroupThatCannotWriteStillReports(t *testing.T) {
	const topic, group, partitions = "held-from-the-start", "held-from-the-start", 2
	b := kafkatest.Start(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 100, 1)...)
	k := quickKafka(b, topic, group)
	k.CommitInterval = config.Duration(100 * time.Millisecond)
	// The chain holds the partition, as the failure policy does while it retries, until
	// the test ends (the chain runs in the partition's loop here: no parallel stage).
	storageDown, ended := errors.New("storage is down"), make(chan struct{})
	chain := processor.Func(func(ctx context.Context, d *processor.Delivery) error {
		release := d.Partition.Hold(storageDown)
		defer release()
		select {
		case <-ctx.Done():
		case <-ended:
		}
		return storageDown
	})
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	m := metrics.New(prometheus.NewRegistry())
	c := New(Settings{Kafka: k, DeliverySpans: 50, DeliveryBytes: 1 << 20, Linger: 50 * time.Millisecond, DrainTimeout: 100 * time.Millisecond,
		CommitMetadata: func([]int) string { return "spanflow/1 the report" }, MetadataInterval: 200 * time.Millisecond},
		kafka.DefaultDialer, &kafka.Client{Addr: kafka.TCP(b.Addr), Transport: transport}, chain, m, logr.Discard())
	c.endCheck = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		close(ended)
		cancel()
		<-done
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		committed, metadata := b.CommittedOffsets(t, group, topic, partitions), b.CommittedMetadata(t, group, topic, partitions)
		if committed[0] == 0 && metadata[0] == "spanflow/1 the report" && c.Blocked() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed %v with metadata %v (blocked: %v): the held pod's report never reached the group", committed, metadata, c.Blocked())
		}
		time.Sleep(50 * time.Millisecond)
	}
	end := b.EndOffsets(t, topic, partitions)
	if committed := b.CommittedOffsets(t, group, topic, partitions); committed[0] != 0 || committed[1] > 0 || end[0]+end[1] != 100 {
		t.Errorf("committed %v of %v: nothing was written, so nothing may be committed past the start", committed, end)
	}
	// The lag the pod shows is the group's: every record of each partition, held or not
	// (it showed the records after the last one fetched, 0 where nothing was handed over).
	for p := range partitions {
		if lag := testutil.ToFloat64(m.ForPartition(p).LagRecords); lag != float64(end[p]) {
			t.Errorf("partition %d: lag_records %v, want %d: nothing of it was written", p, lag, end[p])
		}
	}
	// It keeps counting what is produced while the partitions are held, which fetch
	// nothing (it stood at the end the last fetch saw): their ends are asked for together
	// (kafka-go's client sent a request a partition).
	var listMu sync.Mutex
	var lists, both int
	b.Cluster.ControlKey(int16(kmsg.ListOffsets), func(req kmsg.Request) (kmsg.Response, error, bool) {
		b.Cluster.KeepControl()
		listMu.Lock()
		defer listMu.Unlock()
		lists++
		for _, topic := range req.(*kmsg.ListOffsetsRequest).Topics {
			if len(topic.Partitions) == partitions {
				both++
			}
		}
		return nil, nil, false
	})
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 100, 60, 1)...)
	grown := b.EndOffsets(t, topic, partitions)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		lags := []float64{testutil.ToFloat64(m.ForPartition(0).LagRecords), testutil.ToFloat64(m.ForPartition(1).LagRecords)}
		if lags[0] == float64(grown[0]) && lags[1] == float64(grown[1]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag_records %v while held, want %v: the records produced since the hold are not counted", lags, grown)
		}
	}
	listMu.Lock()
	if both == 0 {
		t.Errorf("%d ListOffsets requests while both partitions were held, none for both", lists)
	}
	listMu.Unlock()
	// And its age keeps growing while storage holds the oldest record (it stood at the
	// age the record had when it was handed over). Partition 1: 0 carries the report,
	// whose commits refresh it too.
	before := testutil.ToFloat64(m.ForPartition(1).LagSeconds)
	time.Sleep(600 * time.Millisecond)
	if after := testutil.ToFloat64(m.ForPartition(1).LagSeconds); after < before+0.3 {
		t.Errorf("lag_seconds %v, then %v 600 ms later: the held record does not age", before, after)
	}
}

// TestFetchesDialAsTheGroupDoes: the partitions' own connections carry the group dialer's
// client id (fetch quotas are the broker's by it), TLS and SASL.
func TestFetchesDialAsTheGroupDoes(t *testing.T) {
	dialer := &kafka.Dialer{ClientID: "team-a.traces", Timeout: 3 * time.Second}
	c := New(Settings{}, dialer, &kafka.Client{}, nil, metrics.New(prometheus.NewRegistry()), logr.Discard())
	if c.fetchDialer.ClientID != "team-a.traces" || c.fetchDialer.Timeout != 3*time.Second {
		t.Errorf("the fetches dial as %+v", c.fetchDialer)
	}
	if tr := c.leaders.transport(); tr.ClientID != "team-a.traces" {
		t.Errorf("the leaders are asked as %q", tr.ClientID)
	}
}

// TestEndsAreAskedAgainAfterABrokerRestart: the connection kept for the ends' requests
// breaks when the broker restarts; the next ask dials again, and answers.
func TestEndsAreAskedAgainAfterABrokerRestart(t *testing.T) {
	const topic, partitions = "ends-restart", 3
	b := kafkatest.StartDurable(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 30, 1)...)
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	c := New(Settings{Kafka: quickKafka(b, topic, "ends-restart")}, kafka.DefaultDialer,
		&kafka.Client{Addr: kafka.TCP(b.Addr), Transport: transport}, nil, metrics.New(prometheus.NewRegistry()), logr.Discard())
	asker := &endAsker{c: c, conns: map[string]*fetchwire.Conn{}}
	defer asker.close()
	ask := func(when string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ends, err := asker.ask(ctx, []int{0, 1, 2})
		want := b.EndOffsets(t, topic, partitions)
		got := map[int]int64{}
		for _, e := range ends {
			if e.Error == nil {
				got[e.Partition] = e.End
			}
		}
		if err != nil || len(got) != partitions || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Fatalf("%s: ends %+v, %v; want %v", when, ends, err, want)
		}
	}
	ask("first")
	if len(asker.conns) != 1 {
		t.Fatalf("%d connections kept, want 1 (one broker)", len(asker.conns))
	}
	b.Stop()
	b.Resume(t)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 30, 30, 1)...)
	ask("after the restart")
}
