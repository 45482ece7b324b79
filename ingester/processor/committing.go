package processor

import (
	"context"

	"github.com/segmentio/kafka-go"
)

type committing struct {
	next Processor
}

// NewCommitting marks a message finished in its partition's offset tracker once next
// returned nil — the spans are durably written (or, through the failure policy,
// dead-lettered or deliberately skipped). An error leaves the message unfinished, so its
// offset and every later one of the partition stay uncommitted.
func NewCommitting(next Processor) Processor {
	return &committing{next: next}
}

func (c *committing) Process(ctx context.Context, msg kafka.Message) error {
	if err := c.next.Process(ctx, msg); err != nil {
		return err
	}
	if p := partitionOf(ctx); p != nil {
		p.Done(msg.Offset)
	}
	return nil
}
