package processor

import (
	"context"
	"testing"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/otlpwire"
)

// oneSpan is a trivial decoder: every message is one span.
type oneSpan struct{}

var oneSpanRequest = func() otlpwire.Request {
	td := ptrace.NewTraces()
	td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	return otlpwire.RequestOf(td)
}()

func (oneSpan) Decode(b *otlpwire.Batch, _ []byte) (int, error) {
	b.AppendRequest(oneSpanRequest.Pieces[0], 1)
	return 1, nil
}

type discard struct{}

func (discard) Write(context.Context, otlpwire.Request) error { return nil }

// BenchmarkChain measures the chain's own cost per message, without Kafka: deliveries of
// 1,000 messages through parallel → metrics → committing → failure policy → retry → base
// with the trivial decoder and a writer that discards ("chain"), next to the decoder alone
// ("decoder"). Run on one CPU (make bench does) so that time is CPU time; the chain's own
// cost is the difference of the two ns/msg.
func BenchmarkChain(b *testing.B) {
	const perDelivery = 1000
	b.Run("decoder", func(b *testing.B) {
		var batch otlpwire.Batch
		for b.Loop() {
			batch.Reset()
			for range perDelivery {
				_, _ = oneSpan{}.Decode(&batch, nil)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perDelivery), "ns/msg")
	})
	b.Run("chain", func(b *testing.B) {
		m := newMetrics()
		var chain Processor = NewBase(oneSpan{}, discard{}, 1000, 0, m, quiet())
		chain = NewRetry(chain, Backoff{Attempts: 3}, nil)
		chain = NewFailurePolicy(chain, Policy{OnDecodeError: config.OnDecodeErrorFail}, m, PolicyLogs{DeadLettered: quiet(), Skipped: quiet()})
		chain = NewCommitting(chain)
		chain = NewMetrics(chain, m)
		pool := NewParallel(chain, 8, 64<<20, func(*Delivery, error) {})
		p := newFakePartition()
		msgs := make([]kafka.Message, perDelivery)
		for i := range msgs {
			msgs[i] = kafka.Message{Value: make([]byte, 875)}
		}
		for b.Loop() {
			batch := make([]kafka.Message, perDelivery) // the consumer makes a new run each time
			copy(batch, msgs)
			if err := pool.Process(context.Background(), NewDelivery(p, batch)); err != nil {
				b.Fatal(err)
			}
			p.mu.Lock()
			p.done = p.done[:0]
			p.mu.Unlock()
		}
		pool.Close()
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perDelivery), "ns/msg")
	})
}
