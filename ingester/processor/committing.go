package processor

import "context"

type committing struct {
	next Processor
}

// NewCommitting marks a delivery finished with its partition once next returned nil —
// every message is written, empty, skipped or dead-lettered — so that its offsets may be
// committed. An error leaves the delivery unfinished: its offsets, and every later one of
// the partition, stay uncommitted.
func NewCommitting(next Processor) Processor {
	return &committing{next: next}
}

func (c *committing) Process(ctx context.Context, d *Delivery) error {
	if err := c.next.Process(ctx, d); err != nil {
		return err
	}
	d.Partition.Done(d)
	return nil
}
