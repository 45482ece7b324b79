// Package processor defines the unit of ingestion work — a Delivery, a run of consecutive
// messages of one partition — and the decorators that wrap its processing. Each decorator
// does one thing; ingester.NewChain assembles them in order.
package processor

import "context"

// Processor handles one delivery. A nil error means every message of it is finished —
// written, empty, skipped, or dead-lettered, as its verdict says — so the delivery's
// offsets may be committed. An error means the delivery is unfinished: it is read again.
type Processor interface {
	Process(ctx context.Context, d *Delivery) error
}

// Func adapts a function to a Processor.
type Func func(ctx context.Context, d *Delivery) error

// Process calls f.
func (f Func) Process(ctx context.Context, d *Delivery) error { return f(ctx, d) }
