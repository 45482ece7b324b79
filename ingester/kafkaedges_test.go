package ingester

import (
	"context"
	"encoding/binary"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/fetchwire"
	"github.com/spanflow/spanflow/ingester/store"
	"github.com/spanflow/spanflow/internal/kafkatest"
)

// The Kafka side as users meet it: a topic that grows partitions, retention that deletes
// what was not read, producers that compress or write in transactions, messages larger than
// a fetch, and a new group on a topic with a backlog. Spans are counted by their IDs.

// franz returns a franz-go client of the broker, closed when the test ends; opts add to it.
func franz(t *testing.T, b *kafkatest.Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	c, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// produceTo writes the OTLP messages of traces first… (spansPer spans each) to partition p
// of topic, n of them, with the manual partitioner of c, and waits for every ack.
func produceTo(t *testing.T, c *kgo.Client, topic string, p int32, first uint64, n, spansPer int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var records []*kgo.Record
	for _, m := range kafkatest.OTLPProtoMessages(t, first, n, spansPer) {
		records = append(records, &kgo.Record{Topic: topic, Partition: p, Key: m.Key, Value: m.Value})
	}
	if err := c.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// deleteRecords has the broker delete partition p of topic below offset, as retention does.
func deleteRecords(t *testing.T, c *kgo.Client, topic string, p int32, offset int64) {
	t.Helper()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = p, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10_000
	resp, err := req.RequestWith(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 || rp.LowWatermark != offset {
				t.Fatalf("deleting records of partition %d below %d: error %d, log start %d", rp.Partition, offset, rp.ErrorCode, rp.LowWatermark)
			}
		}
	}
}

// batch is what a record batch's header says.
type batch struct{ bytes, records, codec int }

// recordBatches returns the record batches of partition p of topic as the broker stores
// them: whether a producer compressed, and how, shows only there.
func recordBatches(t *testing.T, b *kafkatest.Broker, topic string, p int) []batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&fetchwire.Dialer{}).Dial(ctx, b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	res, err := conn.Fetch(ctx, fetchwire.FetchRequest{Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 64 << 20, MaxWait: 100 * time.Millisecond}, nil)
	if err != nil || res.Error != nil {
		t.Fatal(err, res.Error)
	}
	var batches []batch
	for set := res.Records; len(set) >= 61; { // a batch's header: its length at 8, attributes at 21, records at 57
		n := 12 + int(binary.BigEndian.Uint32(set[8:]))
		batches = append(batches, batch{bytes: n, records: int(binary.BigEndian.Uint32(set[57:])), codec: int(set[22] & 7)})
		set = set[min(n, len(set)):]
	}
	return batches
}

// wantSpans waits until mem holds every span of traces first…first+n-1 (spansPer spans
// each).
func wantSpans(t *testing.T, mem *store.Memory, first uint64, n, spansPer int, timeout time.Duration, what string) {
	t.Helper()
	waitFor(t, timeout, what, func() bool {
		for i := range n {
			for key := range store.SpanKeys(kafkatest.Traces(first+uint64(i), spansPer)) {
				if !mem.Has(key) {
					return false
				}
			}
		}
		return true
	})
}

// TestPartitionsAddedWhileRunning: the topic grows from 2 partitions to 4 while the
// ingester runs; spans produced to the new partitions at once, before the group has seen
// them, are stored from their first offset on, and the new partitions are committed to
// their end.
func TestPartitionsAddedWhileRunning(t *testing.T) {
	const topic, group = "growing", "growing"
	b := kafkatest.Start(t, topic, 2)
	producer := franz(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceTo(t, producer, topic, 0, 0, 50, 2)
	produceTo(t, producer, topic, 1, 50, 50, 2)
	mem := store.NewMemory()
	r := startIngester(t, testConfig(b.Addr, topic, group), mem)
	wantSpans(t, mem, 0, 100, 2, 30*time.Second, "the spans of the first two partitions")

	req := kmsg.NewPtrCreatePartitionsRequest()
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = topic, 4
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10_000
	resp, err := req.RequestWith(context.Background(), franz(t, b))
	if err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("adding partitions: %v %+v", err, resp)
	}
	producer = franz(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner())) // one that knows the new partitions
	for p := range int32(4) {
		produceTo(t, producer, topic, p, 100+uint64(p)*50, 50, 2)
	}
	wantSpans(t, mem, 0, 300, 2, 60*time.Second, "the spans of all four partitions")
	waitFor(t, 30*time.Second, "every partition committed to its end", func() bool {
		end, committed := b.EndOffsets(t, topic, 4), b.CommittedOffsets(t, group, topic, 4)
		for p := range 4 {
			if committed[p] != end[p] {
				return false
			}
		}
		return true
	})
	r.stop(t)
	distinct, dups := mem.Counts()
	t.Logf("partitions added: %d distinct spans stored, %d again", distinct, dups)
}

// TestCommittedOffsetBeforeTheLogStart: the group committed offset 10 of a partition, and
// retention then deleted the records below 60 before the ingester came back. It goes on
// from the first record the broker has — it does not wedge, nor jump to the end — says
// what was lost in an error line, and commits past it, so that the loss is not reported
// again by the next member.
func TestCommittedOffsetBeforeTheLogStart(t *testing.T) {
	const topic, group = "retained", "retained"
	b := kafkatest.Start(t, topic, 1)
	admin := franz(t, b)
	produceTo(t, admin, topic, 0, 0, 100, 2)
	if err := b.Commit(group, topic, map[int]int64{0: 10}); err != nil {
		t.Fatal(err)
	}
	deleteRecords(t, admin, topic, 0, 60)
	mem := store.NewMemory()
	logs := &logRecorder{}
	r := startIngesterLogging(t, testConfig(b.Addr, topic, group), mem, logs.Logger(t))
	wantSpans(t, mem, 60, 40, 2, 30*time.Second, "the spans the broker still has")
	waitFor(t, 30*time.Second, "the offset committed to the end", func() bool { return b.CommittedOffsets(t, group, topic, 1)[0] == 100 })
	lost := logs.find(func(e logEntry) bool { return e.error && strings.Contains(e.String(), "lost=50") })
	if len(lost) != 1 {
		t.Errorf("%d error lines saying 50 records were lost, want 1", len(lost))
	}
	if v := scrapeValue(t, r.admin, "spanflow_ingester_records_lost_total"); v != 50 {
		t.Errorf("spanflow_ingester_records_lost_total %v, want 50", v)
	}
	r.stop(t)
	if distinct, _ := mem.Counts(); distinct != 80 {
		t.Errorf("%d distinct spans stored, want the 80 of offsets 60 to 99", distinct)
	}
}

// TestLossToRetentionIsReportedOnce: retention deleted every record past the group's
// committed offset, and nothing new came: the ingester reports the loss, and commits past
// it, so that a restarted member does not report it again.
func TestLossToRetentionIsReportedOnce(t *testing.T) {
	const topic, group = "emptied", "emptied"
	b := kafkatest.Start(t, topic, 1)
	admin := franz(t, b)
	produceTo(t, admin, topic, 0, 0, 30, 2)
	if err := b.Commit(group, topic, map[int]int64{0: 10}); err != nil {
		t.Fatal(err)
	}
	deleteRecords(t, admin, topic, 0, 30)
	for run := range 2 {
		logs := &logRecorder{}
		r := startIngesterLogging(t, testConfig(b.Addr, topic, group), store.NewMemory(), logs.Logger(t))
		waitFor(t, 10*time.Second, "the partition assigned", func() bool { return scrapeValue(t, r.admin, "spanflow_ingester_partitions_assigned") == 1 })
		time.Sleep(time.Second) // fetches at the log start, commits on the interval
		r.stop(t)
		lost := len(logs.find(func(e logEntry) bool { return e.error && strings.Contains(e.String(), "lost=20") }))
		if want := 1 - run; lost != want {
			t.Errorf("run %d: %d error lines saying 20 records were lost, want %d", run, lost, want)
		}
	}
	if committed := b.CommittedOffsets(t, group, topic, 1)[0]; committed != 30 {
		t.Errorf("committed %d, want the log start 30", committed)
	}
}

// TestCommittedOffsetPastTheLogEnd: the group's committed offset is beyond the log's end
// (an unclean leader election truncated the log, or it was lost and recreated). The
// partition is read again from the first record the broker has, with an error line: it
// does not wait for the log to grow past the offset, which would pass over, unread,
// every record produced until then.
func TestCommittedOffsetPastTheLogEnd(t *testing.T) {
	const topic, group = "truncated", "truncated"
	b := kafkatest.Start(t, topic, 1)
	admin := franz(t, b)
	produceTo(t, admin, topic, 0, 0, 20, 2)
	if err := b.Commit(group, topic, map[int]int64{0: 50}); err != nil {
		t.Fatal(err)
	}
	mem := store.NewMemory()
	logs := &logRecorder{}
	r := startIngesterLogging(t, testConfig(b.Addr, topic, group), mem, logs.Logger(t))
	wantSpans(t, mem, 0, 20, 2, 30*time.Second, "the spans the log holds, below the committed offset")
	produceTo(t, admin, topic, 0, 20, 40, 2) // offsets 20 to 59: the log passes 50
	wantSpans(t, mem, 20, 40, 2, 30*time.Second, "the spans produced since, below the committed offset and past it")
	waitFor(t, 30*time.Second, "the offset committed to the end", func() bool { return b.CommittedOffsets(t, group, topic, 1)[0] == 60 })
	if said := logs.find(func(e logEntry) bool { return e.error && strings.Contains(e.String(), "past the end") }); len(said) == 0 {
		t.Error("no error line says the committed offset was past the log's end")
	}
	r.stop(t)
}

// TestIngestsWhatFranzGoCompressed: franz-go (the Collector's Kafka exporter's client)
// compresses batches of many records with each codec; every span is stored once.
func TestIngestsWhatFranzGoCompressed(t *testing.T) {
	const topic, group, perCodec, spansPer = "franz_compressed", "franz-compressed", 200, 3
	b := kafkatest.Start(t, topic, partitions)
	codecs := map[string]kgo.CompressionCodec{"gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}
	seq := uint64(0)
	for _, codec := range codecs {
		producer := franz(t, b, kgo.ProducerBatchCompression(codec), kgo.ProducerLinger(50*time.Millisecond),
			kgo.RecordPartitioner(kgo.ManualPartitioner()))
		for p := range int32(partitions) {
			produceTo(t, producer, topic, p, seq, perCodec/partitions, spansPer)
			seq += perCodec / partitions
		}
	}
	// Each partition holds one batch of each codec (in the order the map gave them).
	for p := range partitions {
		codecsSeen := map[int]bool{}
		for _, batch := range recordBatches(t, b, topic, p) {
			codecsSeen[batch.codec] = true
		}
		if len(codecsSeen) != 4 || codecsSeen[0] {
			t.Fatalf("partition %d holds batches of codecs %v; want gzip, snappy, lz4 and zstd (1 to 4)", p, codecsSeen)
		}
	}
	mem := store.NewMemory()
	r := startIngester(t, testConfig(b.Addr, topic, group), mem)
	wantSpans(t, mem, 0, int(seq), spansPer, 60*time.Second, "every span of every codec")
	waitFor(t, 30*time.Second, "the offsets to reach the end", func() bool { return committedToEnd(t, b, group, topic) })
	r.stop(t)
	if distinct, dups := mem.Counts(); distinct != int(seq)*spansPer || dups != 0 {
		t.Errorf("stored %d distinct spans (%d again), want %d once each", distinct, dups, int(seq)*spansPer)
	}
}

// TestTransactions: a transactional producer (as Kafka Streams, Connect or MirrorMaker 2
// with exactly-once write) commits one transaction and aborts another, each ending in a
// control record. The markers are no messages: nothing is dead-lettered or counted
// undecodable, and the committed offset reaches the log's end, past the last marker, so
// that the lag comes back to zero. The ingester reads uncommitted (as kafka-go's Reader,
// sarama and franz-go do by default): the aborted transaction's spans are stored too.
func TestTransactions(t *testing.T) {
	const topic, dlq, group = "txn", "txn-dlq", "txn"
	b := kafkatest.Start(t, topic, 1, kfake.SeedTopics(1, dlq))
	producer := franz(t, b, kgo.TransactionalID("spanflow-test"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	transaction := func(first uint64, commit kgo.TransactionEndTry) {
		if err := producer.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		produceTo(t, producer, topic, 0, first, 10, 2)
		if err := producer.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	transaction(0, kgo.TryCommit)
	transaction(10, kgo.TryAbort)
	transaction(20, kgo.TryCommit)

	mem := store.NewMemory()
	cfg := testConfig(b.Addr, topic, group)
	cfg.Processing.DeadLetterTopic = dlq
	cfg.Processing.OnDecodeError = config.OnDecodeErrorDeadletter
	r := startIngester(t, cfg, mem)
	wantSpans(t, mem, 0, 10, 2, 30*time.Second, "the first committed transaction")
	wantSpans(t, mem, 20, 10, 2, 30*time.Second, "the second committed transaction")
	end := b.EndOffsets(t, topic, 1)[0]
	if end != 33 {
		t.Fatalf("log end %d, want 33: 30 records and 3 markers", end)
	}
	waitFor(t, 10*time.Second, "the offset committed past the last marker", func() bool { return b.CommittedOffsets(t, group, topic, 1)[0] == end })
	if v := scrapeValue(t, r.admin, "spanflow_ingester_decode_errors_total"); v > 0 {
		t.Errorf("%v decode errors: a marker was read as a message", v)
	}
	r.stop(t)
	if dead := b.ReadAll(t, dlq, 1); len(dead) != 0 {
		t.Errorf("%d messages dead-lettered", len(dead))
	}
	if distinct, _ := mem.Counts(); distinct != 60 {
		t.Errorf("%d distinct spans stored, want 60: read uncommitted, the aborted transaction's 20 too", distinct)
	}
}

// TestMessagesLargerThanAFetch: messages of about 400 KiB, each larger than the fetch's
// maxBytes (here 1 KiB), in batches of several, are read whole — Kafka returns a first
// batch however large — and none is split or skipped.
func TestMessagesLargerThanAFetch(t *testing.T) {
	const topic, group, spansPer = "large", "large", 4000
	b := kafkatest.Start(t, topic, 1, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "8388608"}))
	producer := franz(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(8<<20),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(50*time.Millisecond))
	produceTo(t, producer, topic, 0, 0, 12, spansPer)
	cfg := testConfig(b.Addr, topic, group)
	cfg.Kafka.MaxBytes = 1024
	mem := store.NewMemory()
	r := startIngester(t, cfg, mem)
	wantSpans(t, mem, 0, 12, spansPer, 60*time.Second, "every span of the large messages")
	waitFor(t, 30*time.Second, "the offset committed to the end", func() bool { return b.CommittedOffsets(t, group, topic, 1)[0] == 12 })
	r.stop(t)
}

// TestANewGroupStartsAtItsInitialOffset: a new group on a topic with a backlog reads it
// whole with initialOffset earliest (the default: nothing is missed, unlike Jaeger's
// ingester, whose Kafka clients start at the newest), and with latest only what is produced
// once it has joined — and a member that stops before anything arrived has committed
// where it started, so that what is produced meanwhile is read by the next.
func TestANewGroupStartsAtItsInitialOffset(t *testing.T) {
	const topic = "backlog"
	b := kafkatest.Start(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 40, 2)...)

	mem := store.NewMemory()
	r := startIngester(t, testConfig(b.Addr, topic, "earliest"), mem)
	wantSpans(t, mem, 0, 40, 2, 30*time.Second, "the backlog")
	r.stop(t)

	cfg := testConfig(b.Addr, topic, "latest")
	cfg.Kafka.InitialOffset = config.OffsetLatest
	mem = store.NewMemory()
	r = startIngester(t, cfg, mem)
	waitFor(t, 10*time.Second, "the offsets of the new group committed at the end", func() bool {
		committed := b.CommittedOffsets(t, "latest", topic, partitions)
		for p, end := range b.EndOffsets(t, topic, partitions) {
			if committed[p] != end {
				return false
			}
		}
		return true
	})
	r.stop(t)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 40, 40, 2)...)
	r = startIngester(t, cfg, mem)
	wantSpans(t, mem, 40, 40, 2, 30*time.Second, "what was produced between the two members")
	r.stop(t)
	if distinct, _ := mem.Counts(); distinct != 80 {
		t.Errorf("the group starting at the latest stored %d distinct spans, want only the 80 produced after it started", distinct)
	}
}

// TestPartitionsAddedAsTheGroupJoins: partitions are added as the group rebalances,
// after the leader read the topic's partitions to assign them and before the generation
// starts, where kafka-go's watcher of partition changes takes its first look: it sees no
// change, and without a check of its own the ingester would leave the new partitions to no
// one until the next rebalance.
func TestPartitionsAddedAsTheGroupJoins(t *testing.T) {
	const topic, group = "growing", "growing-race"
	b := kafkatest.Start(t, topic, 2)
	admin := franz(t, b)
	var added atomic.Bool
	b.Cluster.ControlKey(int16(kmsg.SyncGroup), func(kmsg.Request) (kmsg.Response, error, bool) {
		// The leader's SyncGroup carries the assignment it made of 2 partitions.
		b.Cluster.DropControl()
		b.Cluster.SleepControl(func() {
			req := kmsg.NewPtrCreatePartitionsRequest()
			rt := kmsg.NewCreatePartitionsRequestTopic()
			rt.Topic, rt.Count = topic, 4
			req.Topics = append(req.Topics, rt)
			req.TimeoutMillis = 10_000
			if resp, err := req.RequestWith(context.Background(), admin); err != nil || resp.Topics[0].ErrorCode != 0 {
				t.Errorf("adding partitions: %v %+v", err, resp)
			}
			added.Store(true)
		})
		return nil, nil, false
	})
	mem := store.NewMemory()
	r := startIngester(t, testConfig(b.Addr, topic, group), mem)
	waitFor(t, 10*time.Second, "the partitions added", added.Load)
	producer := franz(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range int32(4) {
		produceTo(t, producer, topic, p, uint64(p)*50, 50, 2)
	}
	wantSpans(t, mem, 0, 200, 2, 60*time.Second, "the spans of all four partitions")
	r.stop(t)
}

// TestBatchesLargerThanAFetchCutIntoDeliveries: kcat (librdkafka) writes batches of many
// records, compressed; with a fetch's maxBytes far below a batch each fetch brings one
// batch whole, and deliveries of a few spans cut each batch into many: every span is
// stored once, and the offset reaches the end.
func TestBatchesLargerThanAFetchCutIntoDeliveries(t *testing.T) {
	kcat := lookKcat(t)
	const topic, group, messages, spansPer = "batched", "batched", 600, 3
	b := kafkatest.Start(t, topic, 1)
	input := otlpJSONLines(t, messages, spansPer)
	out, err := exec.Command(kcat, "-P", "-b", b.Addr, "-t", topic, "-p", "0", "-z", "zstd",
		"-X", "acks=all", "-X", "linger.ms=500", "-l", input).CombinedOutput()
	if err != nil {
		t.Fatalf("kcat produce: %v\n%s", err, out)
	}

	cfg := testConfig(b.Addr, topic, group)
	cfg.Encoding = config.EncodingOTLPJSON
	cfg.Kafka.MaxBytes = 4096
	if batches := recordBatches(t, b, topic, 0); len(batches) == 0 || batches[0].codec != 4 || batches[0].bytes <= cfg.Kafka.MaxBytes || batches[0].records < 100 {
		t.Fatalf("kcat wrote batches %+v; want zstd (4) ones of many records, larger than a fetch", batches)
	}
	cfg.Processing.BatchSize = 10
	mem := store.NewMemory()
	r := startIngester(t, cfg, mem)
	wantSpans(t, mem, 0, messages, spansPer, 60*time.Second, "every span")
	waitFor(t, 30*time.Second, "the offset committed to the end", func() bool { return b.CommittedOffsets(t, group, topic, 1)[0] == messages })
	perDelivery := scrapeValue(t, r.admin, "spanflow_ingester_delivery_messages_sum") / scrapeValue(t, r.admin, "spanflow_ingester_delivery_messages_count")
	r.stop(t)
	distinct, dups := mem.Counts()
	if distinct != messages*spansPer || dups != 0 {
		t.Errorf("stored %d distinct spans (%d again), want %d once each", distinct, dups, messages*spansPer)
	}
	t.Logf("deliveries of %.1f messages on average", perDelivery)
}

// topicExists asks the broker, without letting it create the topic, whether topic exists.
func topicExists(t *testing.T, c *kgo.Client, topic string) bool {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	req.AllowAutoTopicCreation = false
	resp, err := req.RequestWith(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0
}

// TestADeletedTopicIsNotCreatedAgain: on a broker that creates the topics clients ask for
// (auto.create.topics.enable, Kafka's default), the topic is deleted while two ingesters
// consume it — to be made again with other settings, or retired. They do not make it
// again by asking for it (kafka-go's group asks in a way that creates it, and would have
// within seconds, with the broker's default settings, at its partition watch or at the
// rejoin the first member's leaving brings the other): they leave the group, say that the
// topic is missing, and once someone creates it again, consume it from its start.
func TestADeletedTopicIsNotCreatedAgain(t *testing.T) {
	const topic, group = "deleted", "deleted"
	b := kafkatest.Start(t, topic, 2, kfake.AllowAutoTopicCreation())
	admin := franz(t, b)
	producer := franz(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceTo(t, producer, topic, 0, 0, 20, 2)
	mem := store.NewMemory()
	members := []*running{startIngester(t, testConfig(b.Addr, topic, group), mem), startIngester(t, testConfig(b.Addr, topic, group), mem)}
	wantSpans(t, mem, 0, 20, 2, 30*time.Second, "the spans produced before the deletion")
	waitFor(t, 30*time.Second, "both members ready", func() bool {
		a, _ := members[0].readyz(t)
		b, _ := members[1].readyz(t)
		return a == http.StatusOK && b == http.StatusOK
	})

	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TopicNames = []string{topic}
	dt := kmsg.NewDeleteTopicsRequestTopic()
	dt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, dt)
	req.TimeoutMillis = 10_000
	if resp, err := req.RequestWith(context.Background(), admin); err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("deleting the topic: %v %+v", err, resp)
	}
	for _, r := range members {
		waitFor(t, 30*time.Second, "/readyz to say that the topic is missing", func() bool {
			code, body := r.readyz(t)
			return code != http.StatusOK && strings.Contains(body, "does not exist")
		})
	}
	// kafka-go's partition watcher looks every 5 s; a rejoin asks at once.
	for range 4 {
		time.Sleep(4 * time.Second)
		if topicExists(t, admin, topic) {
			t.Fatal("the ingester created the deleted topic again")
		}
	}

	if err := b.CreateTopic(topic, 3); err != nil {
		t.Fatal(err)
	}
	producer = franz(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range int32(3) {
		produceTo(t, producer, topic, p, 100+uint64(p)*10, 10, 2)
	}
	wantSpans(t, mem, 100, 30, 2, 60*time.Second, "the spans of the topic made again")
}
