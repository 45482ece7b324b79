package processor

import (
	"context"
	"sync"

	"github.com/segmentio/kafka-go"
)

// Parallel is a bounded pool of workers in front of next. Process hands a message to a
// worker and returns; at most Workers messages and about MaxBytes of message values are
// in flight at once, and Process blocks while either bound is reached.
//
// The result of next is never dropped: errors go to onError. The committing decorator
// inside the pool has already recorded successes, so what reaches onError is a message
// left unfinished (not committed, so it is read again after a restart or rebalance).
type Parallel struct {
	next    Processor
	onError func(kafka.Message, error)
	jobs    chan job
	bytes   *byteBudget
	workers sync.WaitGroup
}

type job struct {
	ctx context.Context
	msg kafka.Message
}

// NewParallel starts workers goroutines; Close stops them. maxBytes ≤ 0 means no byte bound.
func NewParallel(next Processor, workers int, maxBytes int64, onError func(kafka.Message, error)) *Parallel {
	p := &Parallel{
		next:    next,
		onError: onError,
		jobs:    make(chan job),
		bytes:   newByteBudget(maxBytes),
	}
	for range workers {
		p.workers.Go(p.work)
	}
	return p
}

func (p *Parallel) work() {
	for j := range p.jobs {
		err := p.next.Process(j.ctx, j.msg)
		p.bytes.release(int64(len(j.msg.Value)))
		if err != nil {
			p.onError(j.msg, err)
		}
	}
}

// Process waits for room, then hands msg to a worker, which processes it with ctx. It
// returns ctx's error if ctx is done first, or ErrRevoked if the message's partition is
// revoked first (a full pool must not hold up a rebalance); either way the message was not
// handed over.
func (p *Parallel) Process(ctx context.Context, msg kafka.Message) error {
	size := int64(len(msg.Value))
	revoked := revokedOf(ctx)
	if err := p.bytes.acquire(ctx, revoked, size); err != nil {
		return err
	}
	select {
	case p.jobs <- job{ctx: ctx, msg: msg}:
		return nil
	case <-ctx.Done():
		p.bytes.release(size)
		return ctx.Err()
	case <-revoked:
		p.bytes.release(size)
		return ErrRevoked
	}
}

// Close stops the workers after the messages already handed over are processed. No
// Process call may run during or after Close.
func (p *Parallel) Close() {
	close(p.jobs)
	p.workers.Wait()
}

// byteBudget bounds the bytes in flight. A message larger than the whole budget is let
// through alone, so that it cannot block its partition forever.
type byteBudget struct {
	mu      sync.Mutex
	limit   int64
	used    int64
	waiters int
	freed   chan struct{} // closed and replaced on a release while someone waits
}

func newByteBudget(limit int64) *byteBudget {
	return &byteBudget{limit: limit, freed: make(chan struct{})}
}

func (b *byteBudget) acquire(ctx context.Context, revoked <-chan struct{}, n int64) error {
	if b.limit <= 0 {
		return nil
	}
	b.mu.Lock()
	for b.used != 0 && b.used+n > b.limit {
		b.waiters++
		freed := b.freed
		b.mu.Unlock()
		var err error
		select {
		case <-freed:
		case <-ctx.Done():
			err = ctx.Err()
		case <-revoked:
			err = ErrRevoked
		}
		if err != nil {
			b.mu.Lock()
			b.waiters--
			b.mu.Unlock()
			return err
		}
		b.mu.Lock()
		b.waiters--
	}
	b.used += n
	b.mu.Unlock()
	return nil
}

func (b *byteBudget) release(n int64) {
	if b.limit <= 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if b.waiters > 0 {
		close(b.freed)
		b.freed = make(chan struct{})
	}
	b.mu.Unlock()
}
