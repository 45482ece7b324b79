package processor

import (
	"context"
	"sync"
)

// Parallel processes deliveries concurrently: Process hands a delivery over and returns;
// at most Limit deliveries, and about MaxBytes of message values, are in flight at once,
// and Process blocks while either bound is reached. The limit is the ingester's
// parallelism — the storage writes at once — and may change while running.
//
// The result of next is never dropped: errors go to onError. The committing decorator
// inside has already recorded successes, so what reaches onError is a delivery left
// unfinished (not committed, so it is read again after a restart or rebalance).
type Parallel struct {
	next    Processor
	onError func(*Delivery, error)
	running sync.WaitGroup

	mu       sync.Mutex
	limit    int
	maxBytes int64
	inFlight int
	bytes    int64
	waiters  int
	freed    chan struct{} // closed and replaced when room is made while someone waits
}

// NewParallel returns a pool of limit deliveries in flight; maxBytes ≤ 0 means no byte
// bound. Close waits for what it handed over.
func NewParallel(next Processor, limit int, maxBytes int64, onError func(*Delivery, error)) *Parallel {
	return &Parallel{next: next, onError: onError, limit: max(limit, 1), maxBytes: maxBytes, freed: make(chan struct{})}
}

// Process waits for room, then processes d in a goroutine of its own with ctx. It returns
// ctx's error if ctx is done first, or ErrRevoked if d's partition is revoked first (a full
// pool must not hold up a rebalance); either way d was not handed over.
func (p *Parallel) Process(ctx context.Context, d *Delivery) error {
	size := d.Bytes()
	if err := p.acquire(ctx, d.Partition.Revoked(), size); err != nil {
		return err
	}
	p.running.Go(func() {
		err := p.next.Process(ctx, d)
		p.release(size)
		if err != nil {
			p.onError(d, err)
		}
	})
	return nil
}

// SetLimit changes the number of deliveries in flight; deliveries already in flight finish.
func (p *Parallel) SetLimit(limit int) {
	p.mu.Lock()
	p.limit = max(limit, 1)
	p.wake()
	p.mu.Unlock()
}

// Limit returns the number of deliveries allowed in flight.
func (p *Parallel) Limit() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit
}

// Close waits for the deliveries already handed over. No Process call may run during or
// after Close.
func (p *Parallel) Close() { p.running.Wait() }

// room reports whether a delivery of n bytes may start. One larger than the whole byte
// budget is let through alone, so that it cannot block its partition forever.
func (p *Parallel) room(n int64) bool {
	return p.inFlight < p.limit && (p.maxBytes <= 0 || p.bytes == 0 || p.bytes+n <= p.maxBytes)
}

func (p *Parallel) acquire(ctx context.Context, revoked <-chan struct{}, n int64) error {
	p.mu.Lock()
	for !p.room(n) {
		p.waiters++
		freed := p.freed
		p.mu.Unlock()
		var err error
		select {
		case <-freed:
		case <-ctx.Done():
			err = ctx.Err()
		case <-revoked:
			err = ErrRevoked
		}
		p.mu.Lock()
		p.waiters--
		if err != nil {
			p.mu.Unlock()
			return err
		}
	}
	p.inFlight++
	p.bytes += n
	p.mu.Unlock()
	return nil
}

func (p *Parallel) release(n int64) {
	p.mu.Lock()
	p.inFlight--
	p.bytes -= n
	p.wake()
	p.mu.Unlock()
}

// wake tells the waiting callers that there may be room; p.mu is held.
func (p *Parallel) wake() {
	if p.waiters > 0 {
		close(p.freed)
		p.freed = make(chan struct{})
	}
}
