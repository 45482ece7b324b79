package consumer

import (
	"context"
	"sync"

	"github.com/segmentio/kafka-go"

	"github.com/spanflow/spanflow/ingester/metrics"
	"github.com/spanflow/spanflow/ingester/offset"
)

// partition is one assigned partition in one generation: its offset tracker, its pause
// state and its gauges. It is the processor.Partition the chain sees.
type partition struct {
	id      int
	start   int64 // where reading starts: a committed offset, or kafka.FirstOffset/LastOffset
	tracker *offset.Tracker
	gauges  metrics.Partition
	// committed is the offset last committed; only the committer touches it.
	committed int64
	// revoked is closed when the generation that assigned the partition ends.
	revoked <-chan struct{}

	mu      sync.Mutex
	paused  error
	resumed chan struct{} // closed by Resume
}

func newPartition(a kafka.PartitionAssignment, gauges metrics.Partition) *partition {
	known := a.Offset
	if known < 0 {
		known = -1 // FirstOffset/LastOffset: nothing committed yet
	}
	return &partition{id: a.ID, start: a.Offset, tracker: offset.NewTracker(known), gauges: gauges, committed: known}
}

func (p *partition) Done(offset int64) bool { return p.tracker.Done(offset) }

func (p *partition) Revoked() <-chan struct{} { return p.revoked }

func (p *partition) Pause(reason error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused == nil {
		p.resumed = make(chan struct{})
	}
	p.paused = reason
	p.gauges.Paused.Set(1)
}

func (p *partition) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused != nil {
		p.paused = nil
		close(p.resumed)
		p.gauges.Paused.Set(0)
	}
}

func (p *partition) pausedReason() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// waitUnpaused returns at once unless the partition is paused, then when it resumes.
func (p *partition) waitUnpaused(ctx context.Context) error {
	p.mu.Lock()
	if p.paused == nil {
		p.mu.Unlock()
		return nil
	}
	resumed := p.resumed
	p.mu.Unlock()
	select {
	case <-resumed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
