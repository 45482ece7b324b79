package consumer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spanflow/spanflow/internal/kafkatest"
)

// transactionalProducer is a franz-go producer with a transactional id, its transaction
// begun.
func transactionalProducer(ctx context.Context, t *testing.T, b *kafkatest.Broker, topic, id string) *kgo.Client {
	t.Helper()
	p, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	return p
}

func produceSync(ctx context.Context, t *testing.T, p *kgo.Client, values ...string) {
	t.Helper()
	for _, v := range values {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// values reads n messages with f and returns their values.
func values(ctx context.Context, t *testing.T, f *fetcher, n int) string {
	t.Helper()
	return strings.Join(readAs(ctx, t, f, n, func(m kafka.Message) string { return string(m.Value) }), " ")
}

// TestFetcherReadsCommittedTransactionsOnly: with read_committed, a transaction aborted
// is not read, even interleaved with one committed by another producer; nothing past a
// transaction still open is read (its first offset is the partition's end) until it
// commits. With read_uncommitted every record is read, in the log's order.
func TestFetcherReadsCommittedTransactionsOnly(t *testing.T) {
	const topic = "isolation"
	b := kafkatest.Start(t, topic, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	aborted := transactionalProducer(ctx, t, b, topic, "aborts")
	committed := transactionalProducer(ctx, t, b, topic, "commits")
	for i := range 3 {
		produceSync(ctx, t, aborted, fmt.Sprintf("aborted-%d", i))
		produceSync(ctx, t, committed, fmt.Sprintf("committed-%d", i))
	}
	b.Produce(t, topic, kafka.Message{Value: []byte("plain-0")})
	if err := aborted.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	if err := committed.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// The aborting producer's next transaction commits: only the aborted one is left out.
	if err := aborted.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produceSync(ctx, t, aborted, "after-abort-0")
	if err := aborted.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	open := transactionalProducer(ctx, t, b, topic, "stays-open")
	produceSync(ctx, t, open, "open-0", "open-1")
	openAt := b.EndOffsets(t, topic, 1)[0] - 2
	b.Produce(t, topic, kafka.Message{Value: []byte("plain-1")})

	readCommitted := testFetcher(t, b, topic, 0, kafka.FirstOffset)
	readCommitted.readCommitted = true
	if got, want := values(ctx, t, readCommitted, 5), "committed-0 committed-1 committed-2 plain-0 after-abort-0"; got != want {
		t.Errorf("read_committed read %q, want %q", got, want)
	}
	if err := readCommitted.fill(ctx, 50*time.Millisecond); err != nil || len(readCommitted.queue) != 0 {
		t.Fatalf("read_committed read past the open transaction: %d queued, %v", len(readCommitted.queue), err)
	}
	if readCommitted.highWatermark != openAt {
		t.Errorf("read_committed's end is %d, want the open transaction's first offset %d", readCommitted.highWatermark, openAt)
	}

	if err := open.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if got, want := values(ctx, t, readCommitted, 3), "open-0 open-1 plain-1"; got != want {
		t.Errorf("read_committed read %q after the open transaction committed, want %q", got, want)
	}

	readUncommitted := testFetcher(t, b, topic, 0, kafka.FirstOffset)
	want := "aborted-0 committed-0 aborted-1 committed-1 aborted-2 committed-2 plain-0 after-abort-0 open-0 open-1 plain-1"
	if got := values(ctx, t, readUncommitted, 11); got != want {
		t.Errorf("read_uncommitted read %q, want %q", got, want)
	}
}

// TestANewGroupReadingCommittedStartsAtTheStableEnd: a group with nothing committed that
// starts at the latest offset starts where the open transaction began, so that the
// transaction's records are read once it commits.
func TestANewGroupReadingCommittedStartsAtTheStableEnd(t *testing.T) {
	const topic = "isolation-latest"
	b := kafkatest.Start(t, topic, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b.Produce(t, topic, kafka.Message{Value: []byte("before")})
	open := transactionalProducer(ctx, t, b, topic, "open")
	produceSync(ctx, t, open, "open-0")

	f := testFetcher(t, b, topic, 0, kafka.LastOffset)
	f.readCommitted = true
	if err := f.fill(ctx, 50*time.Millisecond); err != nil || len(f.queue) != 0 || f.offset != 1 {
		t.Fatalf("from the latest offset: %d queued, offset %d, %v; want none at 1", len(f.queue), f.offset, err)
	}
	if err := open.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if got := values(ctx, t, f, 1); got != "open-0" {
		t.Errorf("read %q, want open-0", got)
	}
}
