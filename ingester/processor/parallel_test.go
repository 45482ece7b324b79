package processor

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

// gatedProcessor holds each delivery until told to let one go, and records the order in
// which deliveries started.
type gatedProcessor struct {
	mu      sync.Mutex
	started []string
	done    chan struct{}
}

func (g *gatedProcessor) Process(_ context.Context, d *Delivery) error {
	g.mu.Lock()
	g.started = append(g.started, string(d.Messages[0].Value))
	g.mu.Unlock()
	<-g.done
	return nil
}

func (g *gatedProcessor) order() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.started...)
}

// TestParallelServesWaitersInOrder: with fewer slots than partitions, a partition whose
// delivery waits for room gets the next slot, even when another partition comes back for
// more first — otherwise the quicker one could take every slot and the other partition
// would never be consumed.
func TestParallelServesWaitersInOrder(t *testing.T) {
	g := &gatedProcessor{done: make(chan struct{})}
	pool := NewParallel(g, 1, 0, func(*Delivery, error) {})
	quick, slow := newFakePartition(), newFakePartition()
	if err := pool.Process(context.Background(), delivery(quick, "quick-1")); err != nil {
		t.Fatal(err)
	}
	waiting := func(n int) func() bool {
		return func() bool { pool.mu.Lock(); defer pool.mu.Unlock(); return len(pool.waiting) == n }
	}
	var handed sync.WaitGroup
	handed.Go(func() { _ = pool.Process(context.Background(), delivery(slow, "slow-1")) })
	waitUntil(t, waiting(1))
	handed.Go(func() { _ = pool.Process(context.Background(), delivery(quick, "quick-2")) })
	waitUntil(t, waiting(2))

	g.done <- struct{}{} // quick-1 finishes: the slot goes to slow-1, which waited first
	waitUntil(t, func() bool { return len(g.order()) == 2 })
	g.done <- struct{}{}
	waitUntil(t, func() bool { return len(g.order()) == 3 })
	close(g.done)
	handed.Wait()
	pool.Close()
	if got := g.order(); got[1] != "slow-1" || got[2] != "quick-2" {
		t.Errorf("deliveries started in the order %v, want quick-1, slow-1, quick-2", got)
	}
}

// TestParallelMeasuresItsLoad: the share of slot-time in use follows the deliveries in
// flight — one of two slots is half — and is whole while a delivery waits for room;
// finished counts the messages of deliveries processed without error.
func TestParallelMeasuresItsLoad(t *testing.T) {
	g := &gatedProcessor{done: make(chan struct{})}
	pool := NewParallel(g, 2, 0, func(*Delivery, error) {})
	part := newFakePartition()
	share := func(from, to Load) float64 { return float64(to.Busy-from.Busy) / float64(to.Slots-from.Slots) }

	start := pool.Load()
	if err := pool.Process(context.Background(), delivery(part, "a")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	half := pool.Load()
	if s := share(start, half); s < 0.45 || s > 0.55 {
		t.Errorf("one delivery in two slots: %.2f of the slot-time in use, want 0.5", s)
	}

	if err := pool.Process(context.Background(), delivery(part, "b")); err != nil {
		t.Fatal(err)
	}
	var waiting sync.WaitGroup
	waiting.Go(func() { _ = pool.Process(context.Background(), delivery(part, "c")) })
	waitUntil(t, func() bool { pool.mu.Lock(); defer pool.mu.Unlock(); return len(pool.waiting) == 1 })
	from := pool.Load()
	time.Sleep(50 * time.Millisecond)
	if s := share(from, pool.Load()); s != 1 {
		t.Errorf("a delivery waiting for room: %.2f of the slot-time in use, want 1", s)
	}
	close(g.done)
	waiting.Wait()
	pool.Close()
	if got := pool.Load().Finished; got != 3 {
		t.Errorf("%d messages finished, want 3", got)
	}
}

// TestParallelReservations: a reserved slot counts against the limit but not as busy;
// a reservation sees callers waiting for room (Contended). A reservation's delivery waits
// for bytes only, and is not held up by a caller that came first but wants a slot and
// bytes that do not fit; one whose partition is revoked while it waits gives its slot
// back, and Cancel gives a slot back to whoever waits for it.
func TestParallelReservations(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4)) // turns for every reservation here
	g := &gatedProcessor{done: make(chan struct{})}
	pool := NewParallel(g, 3, 10, func(*Delivery, error) {})
	part := newFakePartition()
	ctx := context.Background()
	share := func(from, to Load) float64 { return float64(to.Busy-from.Busy) / float64(to.Slots-from.Slots) }
	state := func() (inFlight, reserved, waiting int, bytes int64) {
		pool.mu.Lock()
		defer pool.mu.Unlock()
		return pool.inFlight, pool.reserved, len(pool.waiting), pool.bytes
	}

	first, err := pool.Reserve(ctx, part.Revoked())
	if err != nil {
		t.Fatal(err)
	}
	from := pool.Load()
	time.Sleep(50 * time.Millisecond)
	if s := share(from, pool.Load()); s != 0 {
		t.Errorf("a reserved slot, nothing running: %.2f of the slot-time busy, want 0", s)
	}
	if err := first.Start(ctx, delivery(part, "eight-by")); err != nil { // 8 of 10 bytes
		t.Fatal(err)
	}
	second, err := pool.Reserve(ctx, part.Revoked())
	if err != nil {
		t.Fatal(err)
	}
	if second.Contended() {
		t.Error("contended with nobody waiting")
	}
	var waiting sync.WaitGroup
	waiting.Go(func() { // a slot is free, but 5 bytes do not fit beside 8
		if err := pool.Process(ctx, delivery(part, "fives")); err != nil {
			t.Error(err)
		}
	})
	waitUntil(t, func() bool { _, _, w, _ := state(); return w == 1 })
	if !second.Contended() {
		t.Error("not contended with a caller waiting for room")
	}
	if err := second.Start(ctx, delivery(part, "x")); err != nil { // 1 byte fits: it goes first
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return len(g.order()) == 2 })
	g.done <- struct{}{}
	g.done <- struct{}{} // both finish: "fives" fits
	waitUntil(t, func() bool { return len(g.order()) == 3 })
	if got := g.order(); got[1] != "x" || got[2] != "fives" {
		t.Errorf("started %v, want the reservation's delivery before the caller waiting for bytes", got)
	}

	// Revoked while waiting for bytes: the slot is given back.
	third, err := pool.Reserve(ctx, part.Revoked())
	if err != nil {
		t.Fatal(err)
	}
	revoked := newFakePartition()
	started := make(chan error, 1)
	go func() { started <- third.Start(ctx, delivery(revoked, "ten bytes!")) }()
	waitUntil(t, func() bool { _, _, w, _ := state(); return w == 1 })
	close(revoked.revoked)
	if err := <-started; err != ErrRevoked {
		t.Errorf("Start of a revoked partition's delivery: %v, want ErrRevoked", err)
	}
	if inFlight, reserved, _, _ := state(); inFlight != 1 || reserved != 0 {
		t.Errorf("after the revoked Start: %d slots taken, %d reserved; want 1 (the one running), 0", inFlight, reserved)
	}

	// Cancel: with every slot taken, a caller waiting for one gets the cancelled one.
	fourth, _ := pool.Reserve(ctx, part.Revoked())
	fifth, _ := pool.Reserve(ctx, part.Revoked())
	waiting.Go(func() {
		if _, err := pool.Reserve(ctx, part.Revoked()); err != nil {
			t.Error(err)
		}
	})
	waitUntil(t, func() bool { _, _, w, _ := state(); return w == 1 })
	fourth.Cancel()
	waitUntil(t, func() bool { _, _, w, _ := state(); return w == 0 })
	fifth.Cancel()
	close(g.done)
	waiting.Wait()
	pool.Close()
	if inFlight, reserved, w, bytes := state(); inFlight != 1 || reserved != 1 || w != 0 || bytes != 0 {
		t.Errorf("at the end: %d slots, %d reserved, %d waiting, %d bytes; want the one reservation left", inFlight, reserved, w, bytes)
	}
}

// TestParallelTurnsOnTheCPUs: reservations beyond the CPUs wait for a turn before their
// delivery is formed — a delivery waiting for a CPU would only hold its bytes. A started
// delivery keeps its turn until it is decoded, and gives it on then, while its write
// still holds its slot; a reservation sees one waiting for a turn (Contended), and the
// slots do not count as all busy while reservations wait for the CPUs rather than for
// slots.
func TestParallelTurnsOnTheCPUs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // one turn
	decode, writing := make(chan struct{}), make(chan struct{})
	decodeThenWrite := Func(func(_ context.Context, d *Delivery) error {
		<-decode
		d.Decoded()
		<-writing
		return nil
	})
	pool := NewParallel(decodeThenWrite, 2, 0, func(*Delivery, error) {})
	part := newFakePartition()
	ctx := context.Background()
	share := func(from, to Load) float64 { return float64(to.Busy-from.Busy) / float64(to.Slots-from.Slots) }

	first, second := reserveBeyondTheTurns(t, pool, part) // both slots taken, one waits for the turn
	if !first.Contended() {
		t.Error("not contended with a reservation waiting for a turn")
	}
	var waiting sync.WaitGroup
	waiting.Go(func() { _ = pool.Process(ctx, delivery(part, "late")) }) // waits for a slot
	waitUntil(t, func() bool { pool.mu.Lock(); defer pool.mu.Unlock(); return len(pool.waiting) == 1 })
	from := pool.Load()
	time.Sleep(50 * time.Millisecond)
	if s := share(from, pool.Load()); s != 0 {
		t.Errorf("nothing running, the slots held by reservations waiting for the CPU: %.2f busy, want 0", s)
	}
	if err := first.Start(ctx, delivery(part, "a")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second:
		t.Fatal("the turn was given on before the delivery holding it was decoded")
	case <-time.After(20 * time.Millisecond):
	}
	close(decode)
	r := <-second // decoded: the turn goes on while the write goes on
	if r == nil {
		t.FailNow()
	}
	r.Cancel()
	close(writing)
	waiting.Wait()
	pool.Close()
	if held := pool.turns.taken(); held != 0 {
		t.Errorf("%d turns still taken after Close", held)
	}
}

// TestReservationAwaitsWithoutItsTurn: while a delivery being formed waits for the
// network, its turn on the CPU goes to another reservation; it takes one again after.
func TestReservationAwaitsWithoutItsTurn(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // one turn
	pool := NewParallel(Func(func(context.Context, *Delivery) error { return nil }), 2, 0, func(*Delivery, error) {})
	part := newFakePartition()
	ctx := context.Background()
	first, second := reserveBeyondTheTurns(t, pool, part)
	err := first.Await(ctx, func() error {
		if r := <-second; r != nil { // it got the turn while the first waited
			r.Cancel()
		}
		return nil
	})
	if err != nil || !first.turn || pool.turns.taken() != 1 {
		t.Errorf("after Await: %v, holding a turn %v, %d turns taken", err, first.turn, pool.turns.taken())
	}
	first.Cancel()
	pool.Close()
	if held := pool.turns.taken(); held != 0 {
		t.Errorf("%d turns taken at the end", held)
	}
}

// TestTurnsFollowGOMAXPROCS: the turns are as many as GOMAXPROCS is when they are taken,
// not when the pool was made — Go changes it when a container's CPU limit changes in
// place. Raised, a second reservation needs no wait; lowered, the next waits for the turn
// held, and a waiter that gives up leaves no turn behind.
func TestTurnsFollowGOMAXPROCS(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	pool := NewParallel(Func(func(context.Context, *Delivery) error { return nil }), 4, 0, func(*Delivery, error) {})
	part := newFakePartition()
	runtime.GOMAXPROCS(2)
	var held []*Reservation
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := pool.Reserve(ctx, part.Revoked())
		cancel()
		if err != nil {
			t.Fatalf("GOMAXPROCS raised to 2, reservation %d of 2 found no turn: %v", len(held)+1, err)
		}
		held = append(held, r)
	}
	runtime.GOMAXPROCS(1)
	held[1].Cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if r, err := pool.Reserve(ctx, part.Revoked()); err == nil {
		r.Cancel()
		t.Fatal("GOMAXPROCS lowered to 1 with a turn held, another reservation took a second turn")
	}
	held[0].Cancel()
	pool.Close()
	if n := pool.turns.taken(); n != 0 {
		t.Errorf("%d turns taken at the end", n)
	}
}

// reserveBeyondTheTurns takes a reservation holding the pool's only turn, and starts
// another that waits for it; the second arrives on the channel once it has one.
func reserveBeyondTheTurns(t *testing.T, pool *Parallel, part *fakePartition) (*Reservation, <-chan *Reservation) {
	t.Helper()
	first, err := pool.Reserve(context.Background(), part.Revoked())
	if err != nil {
		t.Fatal(err)
	}
	second := make(chan *Reservation, 1)
	go func() {
		r, err := pool.Reserve(context.Background(), part.Revoked())
		if err != nil {
			t.Error(err)
		}
		second <- r // nil when it failed
	}()
	waitUntil(t, func() bool { return pool.turns.waiting.Load() == 1 })
	return first, second
}

// taken is the number of turns held.
func (t *cpuTurns) taken() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.held
}

// TestSlotsReservedForWaitingPartitionsAreNotBusy: on a topic of more partitions than
// slots, the slots are reserved by partitions waiting for their next message while
// others wait for room: nothing works, and the load says so (it said every slot busy: a
// pod at 4% of its CPU read as three quarters busy to the operator).
func TestSlotsReservedForWaitingPartitionsAreNotBusy(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4)) // turns for every reservation here
	pool := NewParallel(Func(func(context.Context, *Delivery) error { return nil }), 2, 0, func(*Delivery, error) {})
	part := newFakePartition()
	ctx, cancel := context.WithCancel(context.Background())
	var reservations []*Reservation
	for range 2 {
		r, err := pool.Reserve(ctx, part.Revoked())
		if err != nil {
			t.Fatal(err)
		}
		reservations = append(reservations, r)
	}
	var waiting sync.WaitGroup
	waiting.Go(func() { _, _ = pool.Reserve(ctx, part.Revoked()) }) // a third partition
	waitUntil(t, func() bool { pool.mu.Lock(); defer pool.mu.Unlock(); return len(pool.waiting) == 1 })
	from := pool.Load()
	time.Sleep(50 * time.Millisecond)
	to := pool.Load()
	if s := float64(to.Busy-from.Busy) / float64(to.Slots-from.Slots); s != 0 {
		t.Errorf("both slots reserved by partitions waiting for messages, a third waiting for room: %.2f busy, want 0", s)
	}
	cancel()
	waiting.Wait()
	for _, r := range reservations {
		r.Cancel()
	}
	pool.Close()
}
