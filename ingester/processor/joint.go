package processor

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spanflow/spanflow/ingester/failure"
	"github.com/spanflow/spanflow/ingester/otlpwire"
)

// jointWrites join the small requests of deliveries written at about the same time into
// one storage request. A delivery is a run of one partition: on a topic of many
// partitions at a modest rate each is a few messages, and written alone each was a
// request of a few spans — 776 requests a second of 6 spans each where the Collector's
// batch processor sends 5 of 1,000 (BenchmarkLiveTopic), paid for in CPU here (a request
// and its compression each) and in the backend. A request of at least half the batch
// size is written alone, as before: under a backlog nothing waits.
//
// The first small request opens a joint write and waits for others up to the linger; the
// joint write is sent when it holds the batch size (or 2 MiB), or the linger is over.
// Waiting deliveries give their slot of the parallelism back meanwhile, so that the
// partitions' next deliveries can be formed to join: the parallelism stays the number of
// storage writes at once, and a joint write takes one slot. Each delivery keeps its own
// outcome: when storage refuses a joint write for good (or for its size), every request
// in it is written alone, so that a bad message is isolated within its own delivery and
// no other delivery's messages are refused with it.
type jointWrites struct {
	writer Writer
	// spans seals a joint write at this many spans; requests of half as many go alone.
	spans  int
	linger time.Duration
	sent   func() // counts a storage request

	mu   sync.Mutex
	open *jointWrite
}

// jointBytes seals a joint write at this size: the byte cut of a delivery, well under
// the 4 MiB that gRPC receivers take by default.
const jointBytes = 2 << 20

// jointWrite is the requests of one joint write.
type jointWrite struct {
	parts        []jointPart
	spans, bytes int
	sealed       bool
	full         chan struct{} // closed when sealed for its size
	done         chan struct{} // closed when written; err is then set
	err          error
}

// jointPart is one delivery's request in a joint write; gone once its delivery stopped
// waiting before the joint write was sealed.
type jointPart struct {
	ctx  context.Context
	req  otlpwire.Request
	gone bool
}

// errWriteAlone tells the requests of a joint write that storage refused for good to be
// written one by one.
var errWriteAlone = errors.New("a joint write refused for good: each request is written alone")

func newJointWrites(writer Writer, spans int, linger time.Duration, sent func()) *jointWrites {
	return &jointWrites{writer: writer, spans: max(spans, 1), linger: linger, sent: sent}
}

// alone writes req by itself.
func (j *jointWrites) alone(ctx context.Context, req otlpwire.Request) error {
	j.sent()
	return j.writer.Write(ctx, req)
}

// write writes req, d's request, joined with others when it is small.
func (j *jointWrites) write(ctx context.Context, d *Delivery, req otlpwire.Request) error {
	if 2*req.Spans >= j.spans || j.linger <= 0 {
		return j.alone(ctx, req)
	}
	size := req.Len()
	j.mu.Lock()
	w := j.open
	leads := w == nil
	if leads {
		w = &jointWrite{full: make(chan struct{}), done: make(chan struct{})}
		j.open = w
	}
	part := len(w.parts)
	w.parts = append(w.parts, jointPart{ctx: ctx, req: req})
	w.spans, w.bytes = w.spans+req.Spans, w.bytes+size
	if w.spans >= j.spans || w.bytes >= jointBytes {
		j.seal(w)
		close(w.full)
	}
	j.mu.Unlock()

	d.vacateSlot() // others form deliveries to join meanwhile
	if leads {
		j.lead(ctx, d, w)
	} else {
		select {
		case <-w.done:
		case <-ctx.Done():
			j.mu.Lock()
			if !w.sealed {
				w.parts[part].gone = true
				w.spans, w.bytes = w.spans-req.Spans, w.bytes-size
				j.mu.Unlock()
				return ctx.Err()
			}
			j.mu.Unlock()
			<-w.done // its bytes are being sent: they are the caller's again only then
		}
	}
	if errors.Is(w.err, errWriteAlone) {
		_ = d.retakeSlot(ctx)
		return j.alone(ctx, req)
	}
	if part > 0 && failure.AsRejected(w.err) != nil {
		return nil // a partial success: counted once, by the joint write's first delivery
	}
	return w.err
}

// seal closes w to more requests; j.mu is held.
func (j *jointWrites) seal(w *jointWrite) {
	w.sealed = true
	if j.open == w {
		j.open = nil
	}
}

// lead waits for the requests that join w, then sends it in a slot of d's.
func (j *jointWrites) lead(ctx context.Context, d *Delivery, w *jointWrite) {
	timer := time.NewTimer(j.linger)
	select {
	case <-w.full:
	case <-timer.C:
	case <-ctx.Done():
	}
	timer.Stop()
	j.mu.Lock()
	j.seal(w)
	j.mu.Unlock()
	_ = d.retakeSlot(ctx) // without one (stopping, revoked) the others' requests still go

	var joined otlpwire.Request
	requests := 0
	for _, p := range w.parts {
		if !p.gone {
			joined.Pieces = append(joined.Pieces, p.req.Pieces...)
			joined.Spans += p.req.Spans
			requests++
		}
	}
	// The write is the waiting deliveries': it ends early only when all of them stopped.
	writeCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var waiting atomic.Int32
	waiting.Store(int32(requests))
	var stops []func() bool
	for _, p := range w.parts {
		if !p.gone {
			stops = append(stops, context.AfterFunc(p.ctx, func() {
				if waiting.Add(-1) == 0 {
					cancel()
				}
			}))
		}
	}
	err := j.alone(writeCtx, joined)
	for _, stop := range stops {
		stop()
	}
	cancel()
	if requests > 1 && (failure.IsPermanent(err) || failure.IsTooLarge(err)) {
		err = errWriteAlone
	}
	w.err = err
	close(w.done)
}
