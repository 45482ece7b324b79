package processor

import (
	"context"
	"slices"
	"sync"
	"time"
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
	// waiting are the callers waiting for room, first come first served: with fewer
	// slots than partitions, a partition whose caller waits must not be overtaken again
	// and again by one that comes back quicker (it would never be consumed).
	waiting []*waiter

	// The load: slot-time occupied and allowed since the start (a slot counts as
	// occupied while anyone waits for room), accounted up to accountedAt; finished counts
	// the messages of deliveries processed without error.
	busy, slots time.Duration
	accountedAt time.Time
	finished    int64
}

// Load is what a Parallel did since it was made; the differences of two Loads describe
// the time between them.
type Load struct {
	// Busy is slot-time occupied, Slots slot-time allowed: Busy/Slots is the share of the
	// parallelism in use (1 while deliveries wait for room).
	Busy, Slots time.Duration
	// Finished is the messages of the deliveries processed without error.
	Finished int64
}

// waiter is a caller waiting for room for size bytes; granted is closed when it has it.
type waiter struct {
	size    int64
	granted chan struct{}
}

// NewParallel returns a pool of limit deliveries in flight; maxBytes ≤ 0 means no byte
// bound. Close waits for what it handed over.
func NewParallel(next Processor, limit int, maxBytes int64, onError func(*Delivery, error)) *Parallel {
	return &Parallel{next: next, onError: onError, limit: max(limit, 1), maxBytes: maxBytes, accountedAt: time.Now()}
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
		p.release(size, err == nil, len(d.Messages))
		if err != nil {
			p.onError(d, err)
		}
	})
	return nil
}

// SetLimit changes the number of deliveries in flight; deliveries already in flight finish.
func (p *Parallel) SetLimit(limit int) {
	p.mu.Lock()
	p.account()
	p.limit = max(limit, 1)
	p.grant()
	p.mu.Unlock()
}

// Limit returns the number of deliveries allowed in flight.
func (p *Parallel) Limit() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit
}

// Load returns the load up to now.
func (p *Parallel) Load() Load {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.account()
	return Load{Busy: p.busy, Slots: p.slots, Finished: p.finished}
}

// account adds the slot-time since the last change of the slots in use or allowed; p.mu
// is held, and every such change calls it first.
func (p *Parallel) account() {
	now := time.Now()
	elapsed := now.Sub(p.accountedAt)
	p.accountedAt = now
	used := p.inFlight
	if len(p.waiting) > 0 {
		used = max(used, p.limit)
	}
	p.busy += time.Duration(min(used, p.limit)) * elapsed
	p.slots += time.Duration(p.limit) * elapsed
}

// Close waits for the deliveries already handed over. No Process call may run during or
// after Close.
func (p *Parallel) Close() { p.running.Wait() }

// room reports whether a delivery of n bytes may start. One larger than the whole byte
// budget is let through alone, so that it cannot block its partition forever.
func (p *Parallel) room(n int64) bool {
	return p.inFlight < p.limit && (p.maxBytes <= 0 || p.bytes == 0 || p.bytes+n <= p.maxBytes)
}

// acquire takes room for n bytes, after every caller that waited before it.
func (p *Parallel) acquire(ctx context.Context, revoked <-chan struct{}, n int64) error {
	p.mu.Lock()
	if len(p.waiting) == 0 && p.room(n) {
		p.take(n)
		p.mu.Unlock()
		return nil
	}
	w := &waiter{size: n, granted: make(chan struct{})}
	p.account()
	p.waiting = append(p.waiting, w)
	p.mu.Unlock()
	var err error
	select {
	case <-w.granted:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-revoked:
		err = ErrRevoked
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-w.granted: // granted meanwhile: give the room back
		p.account()
		p.inFlight--
		p.bytes -= n
	default:
		p.account()
		p.waiting = slices.DeleteFunc(p.waiting, func(o *waiter) bool { return o == w })
	}
	p.grant()
	return err
}

// take and release change the slots in use; p.mu is held.
func (p *Parallel) take(n int64) {
	p.account()
	p.inFlight++
	p.bytes += n
}

func (p *Parallel) release(n int64, finished bool, messages int) {
	p.mu.Lock()
	p.account()
	if finished {
		p.finished += int64(messages)
	}
	p.inFlight--
	p.bytes -= n
	p.grant()
	p.mu.Unlock()
}

// grant gives room to the waiting callers in order, as long as the first one fits; p.mu
// is held.
func (p *Parallel) grant() {
	for len(p.waiting) > 0 && p.room(p.waiting[0].size) {
		w := p.waiting[0]
		p.waiting = p.waiting[1:]
		p.take(w.size)
		close(w.granted)
	}
}
