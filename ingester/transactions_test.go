package ingester

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/store"
	"github.com/spanflow/spanflow/internal/kafkatest"
)

// produceTransaction produces the OTLP messages first to first+n-1 (spansPer spans each)
// in one transaction of producer p, and ends it with end unless end is nil (left open).
func produceTransaction(ctx context.Context, t *testing.T, p *kgo.Client, first, n, spansPer int, end *kgo.TransactionEndTry) {
	t.Helper()
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		msg := kafkatest.OTLPProtoMessage(t, uint64(first+i), spansPer)
		p.Produce(ctx, &kgo.Record{Value: msg.Value}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if end != nil {
		if err := p.EndTransaction(ctx, *end); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadCommittedStoresOnlyCommittedSpans: with kafka.isolationLevel read_committed the
// spans of an aborted transaction are never stored, those of a transaction still open only
// once it commits, and the group commits to the log's end (past every marker); read
// uncommitted, another group stores every span. Spans are counted distinct, by their ids.
func TestReadCommittedStoresOnlyCommittedSpans(t *testing.T) {
	const topic, spansPer = "transactional_spans", 3
	b := kafkatest.Start(t, topic, partitions)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	producer := func(id string) *kgo.Client {
		p, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.DefaultProduceTopic(topic), kgo.TransactionalID(id))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	commit, abort := kgo.TryCommit, kgo.TryAbort
	produceTransaction(ctx, t, producer("committed"), 0, 100, spansPer, &commit)
	produceTransaction(ctx, t, producer("aborted"), 100, 100, spansPer, &abort)
	open := producer("open")
	produceTransaction(ctx, t, open, 200, 50, spansPer, nil)

	cfg := testConfig(b.Addr, topic, "read-committed")
	cfg.Kafka.IsolationLevel = config.ReadCommitted
	memory := store.NewMemory()
	r := startIngester(t, cfg, memory)
	has := func(first, n int) (found int) {
		for i := range n {
			for key := range store.SpanKeys(kafkatest.Traces(uint64(first+i), spansPer)) {
				if memory.Has(key) {
					found++
				}
			}
		}
		return found
	}
	waitFor(t, 30*time.Second, "the committed transaction's spans", func() bool { return has(0, 100) == 100*spansPer })
	time.Sleep(time.Second) // time to read what it must not
	if got := has(100, 100); got != 0 {
		t.Errorf("stored %d spans of the aborted transaction", got)
	}
	if got := has(200, 50); got != 0 {
		t.Errorf("stored %d spans of the transaction still open", got)
	}
	waitFor(t, 10*time.Second, "the open transaction's 50 records in spanflow_ingester_open_transaction_records", func() bool {
		return scrapePartitionsSum(t, r.admin, "spanflow_ingester_open_transaction_records") == 50
	})
	if err := open.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the transaction committed last", func() bool { return has(200, 50) == 50*spansPer })
	waitFor(t, 10*time.Second, "commits to the log's end", func() bool {
		end, committed := b.EndOffsets(t, topic, partitions), b.CommittedOffsets(t, cfg.Kafka.ConsumerGroup, topic, partitions)
		for p := range partitions {
			if end[p] > 0 && committed[p] != end[p] {
				return false
			}
		}
		return true
	})
	if open := scrapePartitionsSum(t, r.admin, "spanflow_ingester_open_transaction_records"); open != 0 {
		t.Errorf("%v records said to wait for an open transaction after it committed", open)
	}
	r.stop(t)
	if distinct, duplicates := memory.Counts(); distinct != 150*spansPer || duplicates != 0 || has(100, 100) != 0 {
		t.Errorf("stored %d distinct spans (%d again, %d aborted), want the %d committed once each", distinct, duplicates, has(100, 100), 150*spansPer)
	}

	cfg = testConfig(b.Addr, topic, "read-uncommitted")
	all := store.NewMemory()
	ingestAll := startIngester(t, cfg, all)
	waitFor(t, 30*time.Second, fmt.Sprintf("%d spans", 250*spansPer), func() bool {
		distinct, _ := all.Counts()
		return distinct == 250*spansPer
	})
	ingestAll.stop(t)
}
