package processor

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Parallel processes deliveries concurrently: Process hands a delivery over and returns;
// at most Limit deliveries, and about MaxBytes of message values, are in flight at once,
// and Process blocks while either bound is reached. A caller may instead Reserve a slot
// before it forms its delivery and Start it there; a reservation also waits for a turn
// on a CPU (GOMAXPROCS turns), which its delivery gives back once decoded (Decoded), so
// that deliveries beyond what the CPUs can decode are not formed to wait for one. The
// limit is the ingester's parallelism — the storage writes at once — and may change
// while running.
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
	// inFlight counts the slots taken, reserved ones included; reserved those held for a
	// delivery still being formed.
	inFlight, reserved int
	bytes              int64
	// waiting are the callers waiting for room, first come first served: with fewer
	// slots than partitions, a partition whose caller waits must not be overtaken again
	// and again by one that comes back quicker (it would never be consumed).
	waiting []*waiter

	// turns are the turns on a CPU: a delivery takes one before it is formed and gives it
	// back once decoded.
	turns cpuTurns

	// writing counts the storage writes under way, at most limit: deliveries that gave
	// their slot back to wait for a joint write, and then write alone or again, hold
	// none. writers wait for one to end, first come first served. lingering counts the
	// slots held by deliveries waiting for others to join their write: not busy.
	writing, lingering int
	writers            []chan struct{}

	// The load: slot-time occupied and allowed since the start (a slot counts as
	// occupied while anyone waits for room, unless reservations wait for a turn on a
	// CPU: the CPUs then hold them back), accounted up to accountedAt; finished counts
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

// waiter is a caller waiting for room: a slot (unless it holds a reservation already) and
// size bytes; granted is closed when it has it.
type waiter struct {
	slot, reserve bool // wants a slot; keeps it as a reservation
	starts        bool // turns its reservation into a delivery in flight
	size          int64
	granted       chan struct{}
}

// Reserver is a processor that can hold a slot for a delivery not yet formed.
type Reserver interface {
	Reserve(ctx context.Context, revoked <-chan struct{}) (*Reservation, error)
}

// Reservation is a slot held for a delivery still being formed: a partition copies its
// messages out of the fetched response only once they may run, so that no formed
// delivery waits for room in memory (one a partition: on a pod of many partitions, most
// of its heap under a backlog). Start or Cancel ends it.
type Reservation struct {
	p    *Parallel
	turn bool // holds a turn on a CPU
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
	if err := p.acquire(ctx, d.Partition.Revoked(), &waiter{slot: true, size: size}); err != nil {
		return err
	}
	p.run(ctx, d, size)
	return nil
}

// Reserve waits for a slot, after every caller that waited before it, then for a turn on
// a CPU, and holds both for a delivery to be formed. Load does not count a reserved slot
// as busy. It returns ctx's error, or ErrRevoked if revoked is closed first.
func (p *Parallel) Reserve(ctx context.Context, revoked <-chan struct{}) (*Reservation, error) {
	if err := p.acquire(ctx, revoked, &waiter{slot: true, reserve: true}); err != nil {
		return nil, err
	}
	r := &Reservation{p: p}
	if err := r.takeTurn(ctx, revoked); err != nil {
		r.Cancel()
		return nil, err
	}
	return r, nil
}

// takeTurn waits for a turn on a CPU.
func (r *Reservation) takeTurn(ctx context.Context, revoked <-chan struct{}) error {
	if err := r.p.turns.take(ctx, revoked); err != nil {
		return err
	}
	r.turn = true
	return nil
}

// Await runs wait without the reservation's turn — waiting for the network, a delivery
// being formed needs no CPU — and takes a turn again before it returns, unless ctx ends
// first (the delivery is then started without one).
func (r *Reservation) Await(ctx context.Context, wait func() error) error {
	if r.turn {
		r.turn = false
		r.p.giveTurn()
	}
	err := wait()
	_ = r.takeTurn(ctx, nil)
	return err
}

// Contended reports whether callers wait for room or for a turn: a delivery being formed
// then waits for no more messages.
func (r *Reservation) Contended() bool {
	if r.p.turns.waiting.Load() > 0 {
		return true
	}
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	return len(r.p.waiting) > 0
}

// Start processes d in the reserved slot once its bytes fit (as Process does), d holding
// the reservation's turn until it is decoded; or it gives both back and returns an error
// as Process does.
func (r *Reservation) Start(ctx context.Context, d *Delivery) error {
	p, size := r.p, d.Bytes()
	if err := p.acquire(ctx, d.Partition.Revoked(), &waiter{starts: true, size: size}); err != nil {
		r.Cancel()
		return err
	}
	if r.turn {
		r.turn = false
		d.decoded = p.giveTurn
	}
	p.run(ctx, d, size)
	return nil
}

// Cancel gives the reserved slot, and its turn, back unused.
func (r *Reservation) Cancel() {
	p := r.p
	if r.turn {
		r.turn = false
		p.giveTurn()
	}
	p.mu.Lock()
	p.account()
	p.inFlight--
	p.reserved--
	p.grant()
	p.mu.Unlock()
}

// run processes d, holding its slot and size bytes, in a goroutine of its own. While it
// waits to join a write it may give its slot back (its bytes stay held), and hold one
// again if the write failed.
func (p *Parallel) run(ctx context.Context, d *Delivery, size int64) {
	p.running.Go(func() {
		held := true
		d.slot = &slot{
			vacate: func() {
				if held {
					held = false
					p.vacate()
				}
			},
			hold: func() {
				if !held {
					held = true
					p.hold()
				}
			},
			shared: func() bool { return p.Limit() > 1 },
			linger: p.linger,
			write:  p.write,
		}
		err := p.next.Process(ctx, d)
		d.slot = nil
		d.Decoded() // if it was not: a turn is never kept past the delivery
		p.release(size, err == nil, len(d.Messages), held)
		if err != nil {
			p.onError(d, err)
		}
	})
}

// write runs one storage write once fewer than limit are under way, after those waiting
// before it; it returns ctx's error without running it if ctx ends first.
func (p *Parallel) write(ctx context.Context, w func() error) error {
	p.mu.Lock()
	if p.writing < p.limit && len(p.writers) == 0 {
		p.writing++
		p.mu.Unlock()
	} else {
		granted := make(chan struct{})
		p.writers = append(p.writers, granted)
		p.mu.Unlock()
		select {
		case <-granted:
		case <-ctx.Done():
			p.mu.Lock()
			select {
			case <-granted: // granted meanwhile: given back below
				p.writing--
				p.grantWrites()
			default:
				p.writers = slices.DeleteFunc(p.writers, func(c chan struct{}) bool { return c == granted })
			}
			p.mu.Unlock()
			return ctx.Err()
		}
	}
	defer func() {
		p.mu.Lock()
		p.writing--
		p.grantWrites()
		p.mu.Unlock()
	}()
	return w()
}

// grantWrites lets waiting writers go while fewer than limit writes are under way; p.mu
// is held.
func (p *Parallel) grantWrites() {
	for len(p.writers) > 0 && p.writing < p.limit {
		p.writing++
		close(p.writers[0])
		p.writers = p.writers[1:]
	}
}

// linger counts a slot as not busy while its delivery waits for others to join its
// write (on), or busy again (off).
func (p *Parallel) linger(on bool) {
	p.mu.Lock()
	p.account()
	if on {
		p.lingering++
	} else {
		p.lingering--
	}
	p.mu.Unlock()
}

// hold takes a slot back for a delivery that gave its own back, at once: past the limit
// if it must (until slots are given back), never after callers that may be waiting for
// the delivery's own bytes.
func (p *Parallel) hold() {
	p.mu.Lock()
	p.account()
	p.inFlight++
	p.mu.Unlock()
}

// vacate gives a slot back whose delivery keeps its bytes.
func (p *Parallel) vacate() {
	p.mu.Lock()
	p.account()
	p.inFlight--
	p.grant()
	p.mu.Unlock()
}

func (p *Parallel) giveTurn() { p.turns.give() }

// SetLimit changes the number of deliveries in flight; deliveries already in flight finish.
func (p *Parallel) SetLimit(limit int) {
	p.mu.Lock()
	p.account()
	p.limit = max(limit, 1)
	p.grant()
	p.grantWrites()
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
	used := p.inFlight - p.reserved - p.lingering
	if len(p.waiting) > 0 && p.turns.waiting.Load() == 0 {
		// Callers wait for room, and not because slots wait for the CPUs: the slots at
		// work are what holds them back. Not those reserved by partitions waiting for
		// their first message, nor those waiting for others to join a write: on a topic
		// of more partitions than slots callers always wait, and counted, a pod at 4% of
		// its CPU reported three quarters of its slots busy.
		used = max(used, p.limit-p.reserved-p.lingering)
	}
	p.busy += time.Duration(min(used, p.limit)) * elapsed
	p.slots += time.Duration(p.limit) * elapsed
}

// Close waits for the deliveries already handed over. No Process call may run during or
// after Close.
func (p *Parallel) Close() { p.running.Wait() }

// room reports whether w may go on: a slot free, if it wants one, and its bytes within
// the budget. One larger than the whole byte budget is let through alone, so that it
// cannot block its partition forever.
func (p *Parallel) room(w *waiter) bool {
	if w.slot && p.inFlight >= p.limit {
		return false
	}
	return p.maxBytes <= 0 || w.size == 0 || p.bytes == 0 || p.bytes+w.size <= p.maxBytes
}

// acquire takes the room w asks for, after every caller that waited before it.
func (p *Parallel) acquire(ctx context.Context, revoked <-chan struct{}, w *waiter) error {
	w.granted = make(chan struct{})
	p.mu.Lock()
	p.account()
	p.waiting = append(p.waiting, w)
	p.grant()
	p.mu.Unlock()
	select {
	case <-w.granted: // room at once
		return nil
	default:
	}
	err := awaitGrant(ctx, revoked, w.granted)
	if err == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-w.granted: // granted meanwhile: give the room back
		p.account()
		if w.slot {
			p.inFlight--
		}
		if w.reserve {
			p.reserved--
		}
		if w.starts {
			p.reserved++
		}
		p.bytes -= w.size
	default:
		p.account()
		p.waiting = slices.DeleteFunc(p.waiting, func(o *waiter) bool { return o == w })
	}
	p.grant()
	return err
}

// take and release change the slots and bytes in use; p.mu is held.
func (p *Parallel) take(w *waiter) {
	p.account()
	if w.slot {
		p.inFlight++
	}
	if w.reserve {
		p.reserved++
	}
	if w.starts {
		p.reserved--
	}
	p.bytes += w.size
}

func (p *Parallel) release(n int64, finished bool, messages int, slot bool) {
	p.mu.Lock()
	p.account()
	if finished {
		p.finished += int64(messages)
	}
	if slot {
		p.inFlight--
	}
	p.bytes -= n
	p.grant()
	p.mu.Unlock()
}

// grant gives room to the waiting callers in order: none is let past one that waits
// before it and does not fit, except that a caller holding its slot already (waiting
// only for bytes) is not held up by callers that wait for a slot — they may be waiting
// for its. p.mu is held.
func (p *Parallel) grant() {
	blocked, bytesBlocked := false, false
	p.waiting = slices.DeleteFunc(p.waiting, func(w *waiter) bool {
		if (w.slot && blocked) || (!w.slot && bytesBlocked) || !p.room(w) {
			blocked = true
			bytesBlocked = bytesBlocked || !w.slot
			return false
		}
		p.take(w)
		close(w.granted)
		return true
	})
}
