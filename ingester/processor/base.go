package processor

import (
	"context"
	"fmt"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/decode"
)

// Writer writes traces to storage; a nil error means they are durably stored.
type Writer interface {
	Write(ctx context.Context, traces ptrace.Traces) error
}

type base struct {
	decoder decode.Decoder
	writer  Writer
}

// NewBase returns the innermost processor: decode the message, then write its spans.
// Decode failures are permanent errors naming the partition and offset.
func NewBase(decoder decode.Decoder, writer Writer) Processor {
	return &base{decoder: decoder, writer: writer}
}

func (b *base) Process(ctx context.Context, msg kafka.Message) error {
	traces, err := b.decoder.Decode(msg.Value)
	if err != nil {
		return Permanent(fmt.Errorf("decoding partition %d offset %d: %w", msg.Partition, msg.Offset, err))
	}
	if err := b.writer.Write(ctx, traces); err != nil {
		return fmt.Errorf("writing partition %d offset %d: %w", msg.Partition, msg.Offset, err)
	}
	return nil
}
