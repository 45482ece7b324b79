package ingester

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/deadletter"
	"github.com/spanflow/spanflow/ingester/store"
	"github.com/spanflow/spanflow/internal/kafkatest"
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
