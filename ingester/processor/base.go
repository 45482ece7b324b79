package processor

import (
	"context"
	"fmt"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/decode"
	"github.com/spanflow/spanflow/ingester/metrics"
)

// Writer writes traces to storage; a nil error means they are durably stored.
type Writer interface {
	Write(ctx context.Context, traces ptrace.Traces) error
}

type base struct {
	decoder decode.Decoder
	writer  Writer
	m       *metrics.Metrics
}

// NewBase returns the innermost processor: decode the message, then write its spans
// (through a Batcher, usually). Decode failures are marked DecodeFailure and name the
// partition and offset; write failures keep the writer's verdict (Permanent or not).
func NewBase(decoder decode.Decoder, writer Writer, m *metrics.Metrics) Processor {
	return &base{decoder: decoder, writer: writer, m: m}
}

func (b *base) Process(ctx context.Context, msg kafka.Message) error {
	traces, err := b.decoder.Decode(msg.Value)
	if err != nil {
		b.m.DecodeErrors.Inc()
		return DecodeFailure(fmt.Errorf("decoding partition %d offset %d: %w", msg.Partition, msg.Offset, err))
	}
	spans := traces.SpanCount()
	if spans == 0 {
		return nil
	}
	if err := b.writer.Write(ctx, traces); err != nil {
		b.m.WriteErrors.Inc()
		return fmt.Errorf("writing partition %d offset %d: %w", msg.Partition, msg.Offset, err)
	}
	b.m.Spans.Add(float64(spans))
	return nil
}
