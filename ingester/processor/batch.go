package processor

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Batcher gathers the traces of concurrent Write calls into one write to the storage
// writer. Each caller blocks until the batch holding its traces is written and gets that
// write's result, so a message counts as written only when its own spans are.
//
// A batch is written when it holds MaxSpans spans, when MaxWaiting callers are in it
// (every worker is waiting: nothing more can arrive), or Linger after its first traces.
type Batcher struct {
	writer     Writer
	maxSpans   int
	maxWaiting int
	linger     time.Duration
	// ctx bounds writes started by the linger timer; writes started by a caller use its ctx.
	ctx context.Context

	mu  sync.Mutex
	cur *batch
}

type batch struct {
	traces  ptrace.Traces
	spans   int
	waiting int
	timer   *time.Timer
	done    chan struct{}
	err     error
}

// NewBatcher returns a Batcher writing to writer. ctx is used for linger-triggered writes.
func NewBatcher(ctx context.Context, writer Writer, maxSpans, maxWaiting int, linger time.Duration) *Batcher {
	return &Batcher{writer: writer, maxSpans: maxSpans, maxWaiting: maxWaiting, linger: linger, ctx: ctx}
}

// Write adds traces to the current batch (they are moved, not copied) and waits for the
// batch to be written.
func (b *Batcher) Write(ctx context.Context, traces ptrace.Traces) error {
	spans := traces.SpanCount()
	b.mu.Lock()
	cur := b.cur
	if cur == nil {
		cur = &batch{traces: ptrace.NewTraces(), done: make(chan struct{})}
		b.cur = cur
		cur.timer = time.AfterFunc(b.linger, func() { b.flushIfCurrent(cur) })
	}
	traces.ResourceSpans().MoveAndAppendTo(cur.traces.ResourceSpans())
	cur.spans += spans
	cur.waiting++
	full := cur.spans >= b.maxSpans || cur.waiting >= b.maxWaiting
	if full {
		b.cur = nil
	}
	b.mu.Unlock()

	if full {
		cur.timer.Stop()
		b.write(ctx, cur)
	}
	select {
	case <-cur.done:
		return cur.err
	case <-ctx.Done():
		// The spans may still be written; the message stays unfinished and is read again.
		return ctx.Err()
	}
}

func (b *Batcher) flushIfCurrent(cur *batch) {
	b.mu.Lock()
	if b.cur != cur {
		b.mu.Unlock()
		return
	}
	b.cur = nil
	b.mu.Unlock()
	b.write(b.ctx, cur)
}

func (b *Batcher) write(ctx context.Context, cur *batch) {
	cur.err = b.writer.Write(ctx, cur.traces)
	close(cur.done)
}
