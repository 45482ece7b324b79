// Package offset tracks, for one partition, which fetched deliveries are finished, so that
// the offset committed to Kafka never passes a message that is not yet durably written.
//
// A delivery is a run of consecutive fetched messages, named by its first offset and
// covering up to its last. Deliveries of a partition are fetched in order but may finish
// out of order (parallel processing). The committable offset is one past the last message
// of the longest finished prefix of the fetched deliveries: a gap blocks it. Offsets are
// tracked as fetched, not assumed consecutive, because compaction and transaction markers
// leave holes in them.
package offset

import (
	"context"
	"sort"
	"sync"
)

// Tracker is the in-flight state of one partition. It is safe for concurrent use.
type Tracker struct {
	mu sync.Mutex
	// inflight holds fetched deliveries in fetch order, from the oldest unfinished one on.
	inflight []entry
	// next is the offset to commit: one past the last message of the finished prefix,
	// or the starting offset before anything finished.
	next int64
	// drained is closed and replaced whenever inflight becomes empty, to wake Wait.
	drained chan struct{}
}

type entry struct {
	first, last int64
	done        bool
}

// NewTracker returns a tracker for a partition whose reading starts at start (the offset
// the group had committed, or -1 when unknown).
func NewTracker(start int64) *Tracker {
	return &Tracker{next: start, drained: make(chan struct{})}
}

// Begin records that the delivery of the messages from first to last was fetched.
// Deliveries must follow each other: first is past the last one begun.
func (t *Tracker) Begin(first, last int64) {
	t.mu.Lock()
	t.inflight = append(t.inflight, entry{first: first, last: last})
	t.mu.Unlock()
}

// Abandon forgets the delivery starting at first, the last one begun, which was never
// handed to processing (its partition was revoked first): it is not waited for, and as
// nothing after it was begun, the committable offset cannot pass it.
func (t *Tracker) Abandon(first int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	last := len(t.inflight) - 1
	if last < 0 || t.inflight[last].first != first || t.inflight[last].done {
		return
	}
	t.inflight = t.inflight[:last]
	if last == 0 {
		close(t.drained)
		t.drained = make(chan struct{})
	}
}

// Done records that the delivery starting at first is finished (every message durably
// written, dead-lettered or deliberately skipped). It reports false for a delivery that
// was not begun or is already done.
func (t *Tracker) Done(first int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := sort.Search(len(t.inflight), func(i int) bool { return t.inflight[i].first >= first })
	if i == len(t.inflight) || t.inflight[i].first != first || t.inflight[i].done {
		return false
	}
	t.inflight[i].done = true
	if i != 0 {
		return true
	}
	// The oldest finished: advance over the finished prefix.
	n := 0
	for n < len(t.inflight) && t.inflight[n].done {
		n++
	}
	t.next = t.inflight[n-1].last + 1
	// Reuse the backing array once the prefix is consumed, so a long run does not grow it.
	remaining := copy(t.inflight, t.inflight[n:])
	t.inflight = t.inflight[:remaining]
	if remaining == 0 {
		close(t.drained)
		t.drained = make(chan struct{})
	}
	return true
}

// Pass records that no message lies between the deliveries begun and next, the offset the
// partition is read on from (transaction markers, records deleted, or nothing read yet):
// once those deliveries are finished, next is committable. Without it a partition whose
// log ends in a marker would commit the marker's offset, and show a lag of one record,
// for ever. It must not be called while messages fetched are not yet begun.
func (t *Tracker) Pass(next int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.inflight); n > 0 {
		if from := t.inflight[n-1].last + 1; next > from {
			t.inflight = append(t.inflight, entry{first: from, last: next - 1, done: true})
		}
		return
	}
	t.next = max(t.next, next)
}

// Committable returns the offset to commit (the next one to read), or -1 when no message
// has finished and no start was known.
func (t *Tracker) Committable() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.next
}

// InFlight returns the number of fetched deliveries not yet finished.
func (t *Tracker) InFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, e := range t.inflight {
		if !e.done {
			n++
		}
	}
	return n
}

// Wait blocks until every begun delivery is finished or ctx is done.
func (t *Tracker) Wait(ctx context.Context) error {
	for {
		t.mu.Lock()
		empty := len(t.inflight) == 0
		drained := t.drained
		t.mu.Unlock()
		if empty {
			return nil
		}
		select {
		case <-drained:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
