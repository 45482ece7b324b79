package consumer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/segmentio/kafka-go"

	"github.com/spanflow/spanflow/ingester/eventlog"
	"github.com/spanflow/spanflow/ingester/metrics"
	"github.com/spanflow/spanflow/ingester/offset"
	"github.com/spanflow/spanflow/ingester/processor"
)

// partition is one assigned partition in one generation: its offset tracker, its holds and
// its gauges. It is the processor.Partition handle that goes with its deliveries.
type partition struct {
	id      int
	start   int64 // where reading starts: a committed offset, or kafka.FirstOffset/LastOffset
	tracker *offset.Tracker
	gauges  metrics.Partition
	log     logr.Logger
	said    holdLogs // its pauses and resumes, with the other partitions'
	// committed is the offset last committed; only the committer touches it.
	committed int64
	// lagEnd is the partition's end as the last fetch saw it (or as listed, while it is
	// not fetched), lagFrom where the group stands in it (committed, or where reading
	// began); -1 until known. lag_records is the gap: the consumer group's lag, which
	// grows while the partition is held.
	lagEnd, lagFrom atomic.Int64
	// endSeenAt is when a fetch last told the end (monotonic nanoseconds, sinceStart;
	// 0: never): a partition that stopped fetching (held, or waiting for a slot) has its
	// end asked for apart (askEnds), or its lag would stand still as its backlog grows.
	endSeenAt atomic.Int64
	lagMu     sync.Mutex // a reading and its gauge, together: the committer and the loop both set it
	// begun is one past the last offset of the deliveries begun, or passed; only the
	// partition's loop touches it.
	begun int64
	// revoked is closed when the generation that assigned the partition ends.
	revoked <-chan struct{}
	// finished wakes the committer (buffered; a full channel means a commit is due anyway).
	finished chan<- struct{}
	// learn is told of every finished delivery (the consumer sizes deliveries from them).
	learn func(*processor.Delivery)

	// arenas hold the bytes of the deliveries in flight, by first offset: given back to
	// their pools when the delivery is done; since is when each one's first record was
	// produced (zero when the producer said not), for lag_seconds.
	arenasMu sync.Mutex
	arenas   map[int64]*arena
	since    map[int64]time.Time

	mu       sync.Mutex
	holds    map[int]error // open holds and their reasons
	nextHold int
	// released is set once the partition was handed away: holds that end then do not
	// resume it, and are not logged as if they did.
	released bool
	resumed  chan struct{} // closed when the last hold is released
	// stopFetch cancels fetchCtx, the context of the fetches since the partition last
	// resumed, when it is held again.
	fetchCtx  context.Context
	stopFetch context.CancelFunc
}

// holdLogs say when partitions pause and resume, for all of a consumer's partitions: in a
// storage outage each one pauses within seconds of the others, for the same reason (a
// line each, 96 on 96 partitions, and 96 more as they resume). The first is logged at
// once; then a line an interval counts the others and names the latest. Which ones are
// held, and why, /readyz and spanflow_ingester_partition_paused tell.
type holdLogs struct{ paused, resumed *eventlog.Repeated }

func newHoldLogs(log logr.Logger) holdLogs {
	// An error: a hold lasts until a person or the backend ends it (storage down, a
	// message undecodable under onDecodeError fail, a dead-letter topic missing).
	return holdLogs{paused: eventlog.Error(log, "Partition paused: it is fetched again once what it holds is written or set aside", summaryInterval),
		resumed: eventlog.Info(log, "Partition resumed", summaryInterval)}
}

// Close writes what is not yet logged.
func (l holdLogs) Close() {
	l.paused.Close()
	l.resumed.Close()
}

func newPartition(a kafka.PartitionAssignment, gauges metrics.Partition, log logr.Logger, said holdLogs,
	revoked <-chan struct{}, finished chan<- struct{}, learn func(*processor.Delivery)) *partition {
	known := a.Offset
	if known < 0 {
		known = -1 // FirstOffset/LastOffset: nothing committed yet
	}
	p := &partition{id: a.ID, start: a.Offset, tracker: offset.NewTracker(known), gauges: gauges,
		log: log.WithValues("partition", a.ID), said: said, committed: known, revoked: revoked, finished: finished, learn: learn,
		holds: map[int]error{}, arenas: map[int64]*arena{}, since: map[int64]time.Time{}}
	p.lagEnd.Store(-1)
	p.lagFrom.Store(known)
	return p
}

// sawEnd records the partition's end as a fetch saw it.
func (p *partition) sawEnd(end int64) {
	p.lagMu.Lock()
	p.lagEnd.Store(end)
	p.endSeenAt.Store(sinceStart(time.Now()))
	p.lagMu.Unlock()
	p.showLag()
}

// listedEnd records the partition's end as the brokers listed it when asked at asked,
// unless a fetch told it since (a later answer, which may be lower after a truncation).
func (p *partition) listedEnd(end int64, asked time.Time) {
	p.lagMu.Lock()
	if p.endSeenAt.Load() >= sinceStart(asked) {
		p.lagMu.Unlock()
		return
	}
	p.lagEnd.Store(end)
	p.lagMu.Unlock()
	p.showLag()
}

// committedAt records the offset the group committed.
func (p *partition) committedAt(next int64) {
	p.lagFrom.Store(next)
	p.showLag()
	p.showLagSeconds(time.Now())
}

// showLag sets lag_records once the end and the group's place are both known.
func (p *partition) showLag() {
	p.lagMu.Lock()
	defer p.lagMu.Unlock()
	if end, from := p.lagEnd.Load(), p.lagFrom.Load(); end >= 0 && from >= 0 {
		p.gauges.LagRecords.Set(float64(max(end-from, 0)))
	}
}

// begin records a delivery about to be handed over, and the arena its messages are in.
func (p *partition) begin(d *processor.Delivery, backing *arena) {
	p.begun = d.Last() + 1
	p.tracker.Begin(d.First(), d.Last())
	p.arenasMu.Lock()
	p.arenas[d.First()] = backing
	if len(d.Messages) > 0 {
		p.since[d.First()] = d.Messages[0].Time
	}
	p.arenasMu.Unlock()
}

// showLagSeconds sets lag_seconds to the age of the first record of the earliest
// delivery still in flight: the oldest record the group has not committed, which keeps
// ageing while storage holds it. With none in flight it is 0 once the group committed
// the partition's end, and otherwise stays as it was (the records not fetched yet are
// of no known age).
func (p *partition) showLagSeconds(now time.Time) {
	p.arenasMu.Lock()
	defer p.arenasMu.Unlock()
	if len(p.since) == 0 {
		if end := p.lagEnd.Load(); end >= 0 && p.lagFrom.Load() >= end {
			p.gauges.LagSeconds.Set(0)
		}
		return
	}
	if first := p.since[slices.Min(slices.Collect(maps.Keys(p.since)))]; !first.IsZero() {
		p.gauges.LagSeconds.Set(max(now.Sub(first).Seconds(), 0))
	}
}

// abandon forgets a delivery that was never handed over (its arena is left to the
// collector: nothing is known of who may still hold its messages).
func (p *partition) abandon(d *processor.Delivery) {
	p.tracker.Abandon(d.First())
	p.arenasMu.Lock()
	delete(p.arenas, d.First())
	delete(p.since, d.First())
	p.arenasMu.Unlock()
}

// pass records that the partition holds no message from the deliveries begun to next
// (transaction markers, records deleted, or nothing read yet): next is committed once
// they are finished. At the log's end (highWatermark) nothing is waiting to be read.
func (p *partition) pass(next, highWatermark int64) {
	p.begun = max(p.begun, next)
	p.tracker.Pass(next)
	if p.lagFrom.CompareAndSwap(-1, next) { // nothing committed: reading began here
		p.showLag()
	}
	if next >= highWatermark {
		p.showLagSeconds(time.Now()) // 0 once the end is committed and nothing is in flight
	}
}

func (p *partition) ID() int { return p.id }

func (p *partition) Revoked() <-chan struct{} { return p.revoked }

func (p *partition) Done(d *processor.Delivery) {
	if !p.tracker.Done(d.First()) {
		return
	}
	p.arenasMu.Lock()
	backing := p.arenas[d.First()]
	delete(p.arenas, d.First())
	delete(p.since, d.First())
	p.arenasMu.Unlock()
	if backing != nil {
		backing.release()
	}
	p.learn(d)
	select {
	case p.finished <- struct{}{}:
	default:
	}
}

// Hold pauses the partition until the returned function is called; holds are counted. The
// partition says when it pauses and when it resumes (holdLogs).
func (p *partition) Hold(reason error) func() {
	p.mu.Lock()
	id := p.nextHold
	p.nextHold++
	if len(p.holds) == 0 {
		p.resumed = make(chan struct{})
		if p.stopFetch != nil {
			p.stopFetch() // a fetch waiting for new messages hands none over
			p.fetchCtx, p.stopFetch = nil, nil
		}
		p.gauges.Paused.Set(1)
		p.said.paused.Event(reason, "partition", p.id)
	}
	p.holds[id] = reason
	p.mu.Unlock()
	return sync.OnceFunc(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.holds, id)
		if len(p.holds) == 0 {
			close(p.resumed)
			p.gauges.Paused.Set(0)
			if !p.released {
				p.said.resumed.Event(nil, "partition", p.id)
			}
		}
	})
}

// holdReasons are the reasons of the partition's open holds.
func (p *partition) holdReasons() []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Collect(maps.Values(p.holds))
}

// pausedReason says why the partition is held, or nil: the reason of the hold of the lowest
// offset.
func (p *partition) pausedReason() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.holds) == 0 {
		return nil
	}
	// The hold of the lowest offset is the one the partition's commits wait on (holds
	// that say no offset come after, the oldest first).
	first := func(id int) int64 {
		var h processor.HeldFrom
		if errors.As(p.holds[id], &h) {
			return h.First
		}
		return math.MaxInt64
	}
	ids := slices.SortedFunc(maps.Keys(p.holds), func(a, b int) int { return cmp.Or(cmp.Compare(first(a), first(b)), cmp.Compare(a, b)) })
	if len(ids) > 1 {
		return fmt.Errorf("%w (and %d more deliveries held)", p.holds[ids[0]], len(ids)-1)
	}
	return p.holds[ids[0]]
}

// fetching waits until the partition is not held and returns the context to fetch it
// with: it is cancelled as soon as the partition is held again, or when ctx is done.
func (p *partition) fetching(ctx context.Context) (context.Context, error) {
	for {
		if err := p.waitUnpaused(ctx, nil); err != nil {
			return nil, err
		}
		p.mu.Lock()
		if len(p.holds) == 0 {
			if p.fetchCtx == nil {
				p.fetchCtx, p.stopFetch = context.WithCancel(ctx)
			}
			fetchCtx := p.fetchCtx
			p.mu.Unlock()
			return fetchCtx, nil
		}
		p.mu.Unlock() // held again in between
	}
}

// waitUnpaused returns at once unless the partition is held, then when it resumes;
// onHeld, unless nil, is called first when it waits (to give back what waiting must not
// keep).
func (p *partition) waitUnpaused(ctx context.Context, onHeld func()) error {
	p.mu.Lock()
	if len(p.holds) == 0 {
		p.mu.Unlock()
		return nil
	}
	resumed := p.resumed
	p.mu.Unlock()
	if onHeld != nil {
		onHeld()
	}
	select {
	case <-resumed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
