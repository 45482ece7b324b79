package ingester

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/deadletter"
	"github.com/spanflow/spanflow/ingester/failure"
	"github.com/spanflow/spanflow/ingester/store"
	"github.com/spanflow/spanflow/internal/kafkatest"
	"github.com/spanflow/spanflow/internal/otlptest"
)

// fastRetries makes the failure policy reach its decision within a fraction of a second.
func fastRetries(cfg *config.Config) {
	cfg.Processing.Retry = config.Retry{Min: config.Duration(5 * time.Millisecond), Max: config.Duration(50 * time.Millisecond), Attempts: 3}
	cfg.Processing.BatchLinger = config.Duration(10 * time.Millisecond)
}

// TestStorageOutage: storage fails for a while. While it is down, the partitions pause,
// /readyz says so, and no committed offset passes a message that is not stored. When it
// comes back, every span is written and the offsets reach the end.
func TestStorageOutage(t *testing.T) {
	const topic, group = "spans", "outage"
	b := kafkatest.Start(t, topic, partitions)
	mem := store.NewMemory()
	cfg := testConfig(b.Addr, topic, group)
	fastRetries(&cfg)
	r := startIngester(t, cfg, mem)

	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 300, 3)...)
	waitFor(t, 30*time.Second, "the first 900 spans", func() bool { n, _ := mem.Counts(); return n == 900 })

	mem.FailWith(errors.New("storage unavailable"))
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 300, 300, 3)...)
	waitFor(t, 30*time.Second, "/readyz to report the paused partitions", func() bool {
		code, body := r.readyz(t)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "storage unavailable")
	})
	idx, total := indexTopic(t, b, topic, partitions)
	for range 10 {
		assertCommitsCovered(t, b.CommittedOffsets(t, group, topic, partitions), idx, mem)
		time.Sleep(50 * time.Millisecond)
	}

	mem.FailWith(nil)
	waitFor(t, 30*time.Second, "every span after recovery", func() bool { n, _ := mem.Counts(); return n == total })
	waitFor(t, 10*time.Second, "/readyz to recover", func() bool { code, _ := r.readyz(t); return code == http.StatusOK })
	r.stop(t)
	assertCommittedToEnd(t, b, group, topic)
	distinct, dups := mem.Counts()
	t.Logf("storage outage: %d spans produced, %d stored, %d lost, %d duplicates", total, distinct, total-distinct, dups)
}

// TestBrokerRestart: the broker goes away mid-stream and comes back with its data. The
// ingester keeps trying, rejoins the group, and stores every span.
func TestBrokerRestart(t *testing.T) {
	const topic, group = "spans", "restart"
	b := kafkatest.StartDurable(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 500, 2)...)
	mem := store.NewMemory()
	cfg := testConfig(b.Addr, topic, group)
	fastRetries(&cfg)
	r := startIngester(t, cfg, mem)

	waitFor(t, 30*time.Second, "some spans before the restart", func() bool { n, _ := mem.Counts(); return n >= 200 })
	b.Stop()
	time.Sleep(time.Second) // the ingester sees the broker gone: fetches, heartbeats, commits fail
	b.Resume(t)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 500, 500, 2)...)

	waitFor(t, 60*time.Second, "every span after the restart", func() bool { n, _ := mem.Counts(); return n == 2000 })
	r.stop(t)
	assertCommittedToEnd(t, b, group, topic)
	distinct, dups := mem.Counts()
	t.Logf("broker restart: 2000 spans produced, %d stored, %d lost, %d duplicates", distinct, 2000-distinct, dups)
}

// TestRebalance: a second ingester joins the group mid-stream, then the first leaves.
// Partitions move twice while messages keep arriving; no span is lost.
func TestRebalance(t *testing.T) {
	const topic, group = "spans", "rebalance"
	b := kafkatest.Start(t, topic, partitions)
	mem := store.NewMemory()
	cfg := testConfig(b.Addr, topic, group)
	stop := make(chan struct{})
	produced := produceSteadily(t, b, topic, 20, 10*time.Millisecond, stop)

	first := startIngester(t, cfg, mem)
	waitFor(t, 30*time.Second, "the first ingester to store spans", func() bool { n, _ := mem.Counts(); return n >= 200 })
	second := startIngester(t, cfg, mem)
	// /readyz of the second turns OK once it is a member of a generation: the rebalance happened.
	waitFor(t, 30*time.Second, "the second ingester to join", func() bool { code, _ := second.readyz(t); return code == http.StatusOK })
	before, _ := mem.Counts()
	waitFor(t, 30*time.Second, "progress with two members", func() bool { n, _ := mem.Counts(); return n >= before+400 })
	first.stop(t)
	before, _ = mem.Counts()
	waitFor(t, 30*time.Second, "progress after the first left", func() bool { n, _ := mem.Counts(); return n >= before+400 })
	close(stop)
	total := 2 * <-produced

	waitFor(t, 30*time.Second, "every span", func() bool { n, _ := mem.Counts(); return n == total })
	second.stop(t)
	assertCommittedToEnd(t, b, group, topic)
	distinct, dups := mem.Counts()
	t.Logf("rebalance: %d spans produced, %d stored, %d lost, %d duplicates", total, distinct, total-distinct, dups)
}

// TestPoisonMessagesGoToDeadLetterTopic: 1% of the messages are not OTLP. Each lands on
// the dead-letter topic with headers naming its origin; every good span is stored.
func TestPoisonMessagesGoToDeadLetterTopic(t *testing.T) {
	const topic, dlq, group = "spans", "spans-dlq", "poison"
	b := kafkatest.Start(t, topic, partitions, kfake.SeedTopics(1, dlq))
	msgs := kafkatest.OTLPProtoMessages(t, 0, 1000, 2)
	poison := map[string]bool{}
	for i := 50; i < len(msgs); i += 100 {
		msgs[i].Value = []byte("\xff\xffnot a protobuf " + strconv.Itoa(i))
		poison[string(msgs[i].Value)] = true
	}
	b.Produce(t, topic, msgs...)
	mem := store.NewMemory()
	cfg := testConfig(b.Addr, topic, group)
	fastRetries(&cfg)
	cfg.Processing.DeadLetterTopic = dlq
	cfg.Processing.OnDecodeError = config.OnDecodeErrorDeadletter
	r := startIngester(t, cfg, mem)

	waitFor(t, 30*time.Second, "every good span", func() bool { n, _ := mem.Counts(); return n == 990*2 })
	waitFor(t, 30*time.Second, "the offsets to reach the end", func() bool {
		end, committed := b.EndOffsets(t, topic, partitions), b.CommittedOffsets(t, group, topic, partitions)
		for p := range partitions {
			if end[p] > 0 && committed[p] != end[p] {
				return false
			}
		}
		return true
	})
	r.stop(t)

	dead := b.ReadAll(t, dlq, 1)
	if len(dead) != len(poison) {
		t.Fatalf("%d messages on the dead-letter topic, want %d", len(dead), len(poison))
	}
	for _, m := range dead {
		if !poison[string(m.Value)] {
			t.Errorf("dead-lettered a message that was not poison: %q", m.Value)
		}
		headers := map[string]string{}
		for _, h := range m.Headers {
			headers[h.Key] = string(h.Value)
		}
		if headers[deadletter.HeaderTopic] != topic || headers[deadletter.HeaderOffset] == "" ||
			headers[deadletter.HeaderPartition] == "" || !strings.Contains(headers[deadletter.HeaderError], "decoding partition") {
			t.Errorf("dead letter headers incomplete: %v", headers)
		}
	}
	_, dups := mem.Counts()
	t.Logf("poison: %d poison messages dead-lettered, %d good spans stored, %d duplicates", len(dead), 990*2, dups)
}

// TestUndecodableMessagePausesByDefault: with onDecodeError fail (the default) a poison
// message stops its partition — nothing is skipped — and /readyz says why.
func TestUndecodableMessagePausesByDefault(t *testing.T) {
	const topic, group = "spans", "strict"
	b := kafkatest.Start(t, topic, 1)
	msgs := kafkatest.OTLPProtoMessages(t, 0, 10, 1)
	msgs[5].Value = []byte("garbage")
	b.Produce(t, topic, msgs...)
	mem := store.NewMemory()
	cfg := testConfig(b.Addr, topic, group)
	fastRetries(&cfg)
	cfg.DrainTimeout = config.Duration(500 * time.Millisecond) // the stuck message never drains
	r := startIngester(t, cfg, mem)

	waitFor(t, 30*time.Second, "/readyz to report the poison message", func() bool {
		code, body := r.readyz(t)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "offset 5")
	})
	time.Sleep(300 * time.Millisecond) // let a commit interval or two pass
	r.stop(t)
	if c := b.CommittedOffsets(t, group, topic, 1)[0]; c > 5 {
		t.Errorf("committed offset %d passes the undecodable message at 5", c)
	}
}

// TestTLSAndSASL ingests from a broker that speaks only TLS and requires SCRAM-SHA-256,
// with the CA and credentials read from files as the operator mounts them; with a wrong
// password the ingester does not join, reports not-ready, and writes nothing.
func TestTLSAndSASL(t *testing.T) {
	const topic = "spans"
	b, sec := kafkatest.StartSecure(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 100, 2)...)
	dir := t.TempDir()
	writeFile := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg := testConfig(b.Addr, topic, "secure")
	cfg.Kafka.TLS = config.KafkaTLS{Enabled: true, CAFile: sec.CAFile}
	cfg.Kafka.SASL = config.KafkaSASL{Mechanism: config.SASLScramSHA256,
		UsernameFile: writeFile("username", sec.Username+"\n"), PasswordFile: writeFile("password", sec.Password)}
	mem := store.NewMemory()
	r := startIngester(t, cfg, mem)
	waitFor(t, 30*time.Second, "every span over TLS and SASL", func() bool { n, _ := mem.Counts(); return n == 200 })
	r.stop(t)
	assertCommittedToEnd(t, b, "secure", topic)

	cfg.Kafka.ConsumerGroup = "wrong-password"
	cfg.Kafka.SASL.PasswordFile = writeFile("wrong", "not-the-password")
	mem = store.NewMemory()
	r = startIngester(t, cfg, mem)
	time.Sleep(2 * time.Second)
	if code, _ := r.readyz(t); code != http.StatusServiceUnavailable {
		t.Errorf("with a wrong password /readyz is %d", code)
	}
	if n, _ := mem.Counts(); n != 0 {
		t.Errorf("with a wrong password %d spans were written", n)
	}
}

// traceOf is the trace ID of kafkatest's trace seq.
func traceOf(seq uint64) pcommon.TraceID {
	return kafkatest.Traces(seq, 1).ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
}

// refusingTrace is a store that refuses for good every write holding a span of trace seq.
func refusingTrace(seq uint64, why string) *store.Memory {
	marked := traceOf(seq)
	mem := store.NewMemory()
	mem.RefuseWhen(func(k store.SpanKey) error {
		if k.Trace == marked {
			return failure.Permanent(errors.New(why))
		}
		return nil
	})
	return mem
}

// TestRefusedSpanIsDeadLetteredAlone: storage refuses for good the spans of one trace.
// Only the message holding it goes to the dead-letter topic; every other span is stored.
func TestRefusedSpanIsDeadLetteredAlone(t *testing.T) {
	const topic, dlq, group = "spans", "spans-dlq", "refused"
	b := kafkatest.Start(t, topic, partitions, kfake.SeedTopics(1, dlq))
	msgs := kafkatest.OTLPProtoMessages(t, 0, 2000, 2)
	b.Produce(t, topic, msgs...)
	mem := refusingTrace(1234, "span refused: invalid attribute")
	cfg := testConfig(b.Addr, topic, group)
	fastRetries(&cfg)
	cfg.Processing.DeadLetterTopic = dlq
	r := startIngester(t, cfg, mem)

	waitFor(t, 30*time.Second, "every other span", func() bool { n, _ := mem.Counts(); return n == 1999*2 })
	waitFor(t, 30*time.Second, "the offsets to reach the end", func() bool { return committedToEnd(t, b, group, topic) })
	r.stop(t)
	dead := b.ReadAll(t, dlq, 1)
	if len(dead) != 1 || string(dead[0].Value) != string(msgs[1234].Value) {
		t.Fatalf("%d messages dead-lettered, want only the one holding the refused trace", len(dead))
	}
	distinct, dups := mem.Counts()
	t.Logf("refused span: 1 message dead-lettered, %d of %d other spans stored, %d duplicates", distinct, 1999*2, dups)
}

// TestRefusedSpanWithoutDeadLetterHoldsOnlyItsPartition: with no dead-letter topic the
// refused message holds its own partition — /readyz says which — while the others carry
// on. The held partition fetches nothing past what it had when the hold began: of the
// messages produced to it afterwards none is handed to the chain or reaches storage, and
// its lag grows by them. When storage takes the span, the partition resumes and
// everything is stored.
func TestRefusedSpanWithoutDeadLetterHoldsOnlyItsPartition(t *testing.T) {
	const topic, group = "spans", "refused-held"
	b := kafkatest.Start(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 1000, 2)...)
	marked := traceOf(400)
	mem := refusingTrace(400, "span refused")
	cfg := testConfig(b.Addr, topic, group)
	fastRetries(&cfg)
	r := startIngester(t, cfg, mem)
	waitFor(t, 30*time.Second, "/readyz to name the held partition", func() bool {
		code, body := r.readyz(t)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "span refused") && strings.Count(body, "paused") == 1
	})
	// The other partitions are drained, the held one stops at its refused message.
	idx, total := indexTopic(t, b, topic, partitions)
	heldPartition, refusedOffset := -1, int64(-1)
	for p, msgs := range idx {
		for _, m := range msgs {
			if slices.ContainsFunc(m.spans, func(k store.SpanKey) bool { return k.Trace == marked }) {
				heldPartition, refusedOffset = p, m.offset
			}
		}
	}
	waitFor(t, 30*time.Second, "the other partitions to be committed to the end", func() bool {
		end, committed := b.EndOffsets(t, topic, partitions), b.CommittedOffsets(t, group, topic, partitions)
		for p := range partitions {
			if p != heldPartition && committed[p] != end[p] {
				return false
			}
		}
		return true
	})

	// More messages arrive on every partition. The others take theirs; the held one
	// fetches none of them.
	handedOver := scrapeValue(t, r.admin, "spanflow_ingester_messages_total")
	endBefore := b.EndOffsets(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 1000, 400, 2)...)
	idx, total = indexTopic(t, b, topic, partitions)
	newOnHeld, newOnOthers := 0, 0
	for p, msgs := range idx {
		for _, m := range msgs {
			switch {
			case m.offset < endBefore[p]:
			case p == heldPartition:
				newOnHeld++
			default:
				newOnOthers++
			}
		}
	}
	if newOnHeld == 0 || newOnOthers == 0 {
		t.Fatalf("the new messages went %d to the held partition and %d to the others; the test needs both", newOnHeld, newOnOthers)
	}
	waitFor(t, 30*time.Second, "the other partitions to take the new messages", func() bool {
		end, committed := b.EndOffsets(t, topic, partitions), b.CommittedOffsets(t, group, topic, partitions)
		for p := range partitions {
			if p != heldPartition && committed[p] != end[p] {
				return false
			}
		}
		return true
	})
	committed := b.CommittedOffsets(t, group, topic, partitions)
	assertCommitsCovered(t, committed, idx, mem)
	for _, m := range idx[heldPartition] {
		if m.offset < endBefore[heldPartition] {
			continue
		}
		for _, k := range m.spans {
			if mem.Has(k) {
				t.Fatalf("partition %d is held at offset %d, but the spans of offset %d, produced after the hold, were stored",
					heldPartition, refusedOffset, m.offset)
			}
		}
	}
	if got, want := scrapeValue(t, r.admin, "spanflow_ingester_messages_total"), handedOver+float64(newOnOthers); got != want {
		t.Errorf("%v messages handed to the chain, want %v: the held partition fetched %v new messages", got, want, got-want)
	}
	if c := committed[heldPartition]; c > refusedOffset {
		t.Errorf("held partition %d committed at %d, past its refused message at %d", heldPartition, c, refusedOffset)
	}
	if lag := b.EndOffsets(t, topic, partitions)[heldPartition] - max(committed[heldPartition], 0); lag < int64(newOnHeld) {
		t.Errorf("held partition %d lags by %d messages, less than the %d produced to it since the hold", heldPartition, lag, newOnHeld)
	}

	mem.RefuseWhen(nil)
	waitFor(t, 30*time.Second, "every span once storage takes the refused one", func() bool { n, _ := mem.Counts(); return n == total })
	waitFor(t, 10*time.Second, "/readyz to recover", func() bool { code, _ := r.readyz(t); return code == http.StatusOK })
	r.stop(t)
	assertCommittedToEnd(t, b, group, topic)
	distinct, dups := mem.Counts()
	t.Logf("refused span held partition %d at offset %d: %d new messages there waited, %d on the others were taken; %d of %d spans stored, %d duplicates",
		heldPartition, refusedOffset, newOnHeld, newOnOthers, distinct, total, dups)
}

// TestOutageNeverFillsTheDeadLetterTopic: with a dead-letter topic configured, storage
// refusing credentials for 2 s and then down for 20 s sends nothing there: a backend that
// is down is never the messages' fault. Nothing is lost.
func TestOutageNeverFillsTheDeadLetterTopic(t *testing.T) {
	const topic, dlq, group = "spans", "spans-dlq", "outage-dlq"
	b := kafkatest.Start(t, topic, partitions, kfake.SeedTopics(1, dlq))
	mem := store.NewMemory()
	cfg := testConfig(b.Addr, topic, group)
	fastRetries(&cfg)
	cfg.Processing.DeadLetterTopic = dlq
	cfg.Processing.OnDecodeError = config.OnDecodeErrorDeadletter
	r := startIngester(t, cfg, mem)
	stop := make(chan struct{})
	produced := produceSteadily(t, b, topic, 20, 20*time.Millisecond, stop)
	waitFor(t, 30*time.Second, "spans before the outage", func() bool { n, _ := mem.Counts(); return n >= 200 })

	mem.FailWith(errors.New("otlp/grpc: rpc error: code = Unauthenticated desc = bad token"))
	time.Sleep(2 * time.Second)
	mem.FailWith(errors.New("otlp/grpc: rpc error: code = Unavailable desc = connection refused"))
	waitFor(t, 10*time.Second, "/readyz to report the outage", func() bool { code, _ := r.readyz(t); return code == http.StatusServiceUnavailable })
	time.Sleep(18 * time.Second)
	mem.FailWith(nil)
	close(stop)
	total := 2 * <-produced

	waitFor(t, 60*time.Second, "every span after the outage", func() bool { n, _ := mem.Counts(); return n == total })
	waitFor(t, 30*time.Second, "the offsets to reach the end", func() bool { return committedToEnd(t, b, group, topic) })
	r.stop(t)
	if dead := b.ReadAll(t, dlq, 1); len(dead) != 0 {
		t.Errorf("an outage of storage sent %d messages to the dead-letter topic", len(dead))
	}
	distinct, dups := mem.Counts()
	t.Logf("22 s outage with a DLQ: %d spans produced, %d stored, %d lost, %d duplicates, 0 dead-lettered", total, distinct, total-distinct, dups)
}

// TestEmptyValuesAndTombstones: messages with no spans are counted and committed past,
// never treated as undecodable (the default onDecodeError would hold the partition).
func TestEmptyValuesAndTombstones(t *testing.T) {
	const topic, group = "spans", "empty"
	b := kafkatest.Start(t, topic, 1)
	msgs := kafkatest.OTLPProtoMessages(t, 0, 10, 2)
	msgs[3].Value = nil      // a tombstone
	msgs[6].Value = []byte{} // an empty value
	b.Produce(t, topic, msgs...)
	mem := store.NewMemory()
	r := startIngester(t, testConfig(b.Addr, topic, group), mem)
	waitFor(t, 30*time.Second, "the spans of the other messages", func() bool { n, _ := mem.Counts(); return n == 16 })
	waitFor(t, 30*time.Second, "the offsets to reach the end", func() bool { return b.CommittedOffsets(t, group, topic, 1)[0] == 10 })
	if empty := scrapeValue(t, r.admin, "spanflow_ingester_empty_messages_total"); empty != 2 {
		t.Errorf("%v empty messages counted, want 2", empty)
	}
	if code, body := r.readyz(t); code != http.StatusOK {
		t.Errorf("/readyz %d: %s", code, body)
	}
	r.stop(t)
}

// TestMissingTopic: a topic that does not exist is reported — /readyz, the metric — and
// the group is not rejoined in a tight loop; once the topic is created, it is consumed.
// The broker creates topics asked for (Kafka's default auto.create.topics.enable): the
// ingester must not be what creates a misspelt one (CreateTopic fails if it did).
func TestMissingTopic(t *testing.T) {
	const topic, group = "not-yet", "missing"
	b := kafkatest.Start(t, "other", 1, kfake.AllowAutoTopicCreation())
	mem := store.NewMemory()
	cfg := testConfig(b.Addr, topic, group)
	r := startIngester(t, cfg, mem)
	waitFor(t, 30*time.Second, "/readyz to say the topic is missing", func() bool {
		code, body := r.readyz(t)
		return code == http.StatusServiceUnavailable && strings.Contains(body, `topic "not-yet" does not exist`)
	})
	if v := scrapeValue(t, r.admin, "spanflow_ingester_topic_missing"); v != 1 {
		t.Errorf("spanflow_ingester_topic_missing %v, want 1", v)
	}
	// With backoff the member joins a handful of times in these seconds, not thousands.
	time.Sleep(3 * time.Second)
	if joins := scrapeValue(t, r.admin, "spanflow_ingester_group_joins_total"); joins > 10 {
		t.Errorf("%v joins of the group in a few seconds while the topic was missing: a tight rejoin loop", joins)
	}
	if err := b.CreateTopic(topic, 2); err != nil {
		t.Fatal(err)
	}
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 50, 2)...)
	waitFor(t, 60*time.Second, "the spans once the topic exists", func() bool { n, _ := mem.Counts(); return n == 100 })
	waitFor(t, 10*time.Second, "/readyz once the topic exists", func() bool { code, _ := r.readyz(t); return code == http.StatusOK })
	r.stop(t)
}

// committedToEnd reports whether every non-empty partition is committed to its end.
func committedToEnd(t *testing.T, b *kafkatest.Broker, group, topic string) bool {
	end, committed := b.EndOffsets(t, topic, partitions), b.CommittedOffsets(t, group, topic, partitions)
	for p := range partitions {
		if end[p] > 0 && committed[p] != end[p] {
			return false
		}
	}
	return true
}

// TestWrongBrokerAddressIsAnError: an ingester pointed at an address where no broker
// listens says so at error level, naming the address, and /readyz is not OK.
func TestWrongBrokerAddressIsAnError(t *testing.T) {
	const addr = "127.0.0.1:1"
	logs := &logRecorder{}
	r := startIngesterLogging(t, testConfig(addr, "spans", "nowhere"), store.NewMemory(), logs.Logger(t))
	waitFor(t, 10*time.Second, "an error line naming "+addr, func() bool {
		return len(logs.find(func(e logEntry) bool { return e.error && strings.Contains(e.String(), addr) })) > 0
	})
	if code, body := r.readyz(t); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d with no broker at %s: %s", code, addr, body)
	}
	r.stop(t)
}

// TestAStopSaysSoAsItBegins: a stop logs that it began, with the drain timeout it may
// take (storage down, it takes all of it, and nothing was said until the end), before
// the line that it ended.
func TestAStopSaysSoAsItBegins(t *testing.T) {
	logs := &logRecorder{}
	r := startIngesterLogging(t, testConfig("127.0.0.1:1", "spans", "stopping"), store.NewMemory(), logs.Logger(t))
	r.stop(t)
	var said []string
	for _, e := range logs.find(func(e logEntry) bool { return strings.HasPrefix(e.msg, "Stop") }) {
		said = append(said, e.String())
	}
	if len(said) != 2 || !strings.Contains(said[0], "drainTimeout") || !strings.Contains(said[1], "Stopped") {
		t.Errorf("logged %q, want the stop's start with its drain timeout, then its end", said)
	}
}

// TestUnauthenticatedThenUnavailableOverOTLP is TestOutageNeverFillsTheDeadLetterTopic
// end to end: the real OTLP/gRPC writer against a backend that refuses the credentials
// (Unauthenticated) for 2 s, then is unavailable for 2 s, then accepts. With a
// dead-letter topic configured nothing goes there, and every span is stored.
func TestUnauthenticatedThenUnavailableOverOTLP(t *testing.T) {
	const topic, dlq, group = "spans", "spans-dlq", "otlp-outage"
	b := kafkatest.Start(t, topic, partitions, kfake.SeedTopics(1, dlq))
	sink := otlptest.Start(t)
	cfg := testConfig(b.Addr, topic, group)
	fastRetries(&cfg)
	cfg.Processing.DeadLetterTopic = dlq
	cfg.Processing.OnDecodeError = config.OnDecodeErrorDeadletter
	cfg.Storage = config.Storage{Type: config.StorageOTLP, OTLP: config.OTLPStorage{
		Endpoint: sink.Addr, Protocol: config.OTLPProtocolGRPC, Insecure: true,
		Compression: config.CompressionGzip, Timeout: config.Duration(5 * time.Second)}}
	r := startIngester(t, cfg, nil) // the writer the config names
	stop := make(chan struct{})
	produced := produceSteadily(t, b, topic, 20, 20*time.Millisecond, stop)
	waitFor(t, 30*time.Second, "spans before the outage", func() bool { return sink.Spans() >= 200 })

	for _, phase := range []struct {
		code codes.Code
		msg  string
	}{{codes.Unauthenticated, "bad token"}, {codes.Unavailable, "backend restarting"}} {
		sink.FailWith(status.Error(phase.code, phase.msg))
		waitFor(t, 10*time.Second, "/readyz to report "+phase.code.String(), func() bool {
			code, body := r.readyz(t)
			return code == http.StatusServiceUnavailable && strings.Contains(body, phase.code.String())
		})
		time.Sleep(2 * time.Second) // the length of the phase, not a synchronization
	}
	sink.FailWith(nil)
	close(stop)
	total := 2 * <-produced

	waitFor(t, 30*time.Second, "every span after the outage", func() bool { return sink.Spans() == total })
	waitFor(t, 30*time.Second, "the offsets to reach the end", func() bool { return committedToEnd(t, b, group, topic) })
	r.stop(t)
	if dead := b.ReadAll(t, dlq, 1); len(dead) != 0 {
		t.Errorf("refused credentials and an outage sent %d messages to the dead-letter topic", len(dead))
	}
	distinct, dups := sink.Received.Counts()
	if distinct != total {
		t.Errorf("%d distinct spans stored of %d produced", distinct, total)
	}
	t.Logf("Unauthenticated 2 s, Unavailable 2 s over OTLP/gRPC with a DLQ: %d spans produced, %d stored, %d lost, %d duplicates, 0 dead-lettered",
		total, distinct, total-distinct, dups)
}

// TestUnreachableBrokersAreNamedInReadyz: while the group cannot be joined, /readyz says
// why (the broker's address and the dial's error), not only that the member is not in it.
func TestUnreachableBrokersAreNamedInReadyz(t *testing.T) {
	r := startIngester(t, testConfig("127.0.0.1:1", "spans", "unreachable"), store.NewMemory())
	waitFor(t, 30*time.Second, "/readyz to say why the group cannot be joined", func() bool {
		code, body := r.readyz(t)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "not a member of the consumer group yet: ") &&
			strings.Contains(body, "127.0.0.1:1")
	})
	r.stop(t)
}

// TestAMissingDeadLetterTopicIsSaidAtStart: a dead-letter topic that does not exist is
// reported when the ingester starts, not first by a partition held at the first dead
// letter; and it is not created by asking.
func TestAMissingDeadLetterTopicIsSaidAtStart(t *testing.T) {
	const topic = "spans"
	b := kafkatest.Start(t, topic, 1, kfake.AllowAutoTopicCreation())
	cfg := testConfig(b.Addr, topic, "dlq-check")
	cfg.Processing.DeadLetterTopic = "spans-dlq"
	var mu sync.Mutex
	var lines []string
	log := funcr.New(func(_, args string) { mu.Lock(); lines = append(lines, args); mu.Unlock() }, funcr.Options{})
	r := startIngesterLogging(t, cfg, store.NewMemory(), log)
	waitFor(t, 10*time.Second, "the missing dead-letter topic to be said", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(lines, func(l string) bool {
			return strings.Contains(l, "The dead-letter topic does not exist") && strings.Contains(l, "spans-dlq")
		})
	})
	r.stop(t)
	if err := b.CreateTopic("spans-dlq", 1); err != nil {
		t.Errorf("the check created the dead-letter topic: %v", err)
	}
}
