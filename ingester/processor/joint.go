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

// jointWrites join the small requests (under a tenth of the batch size) of deliveries at
// their partitions' ends (Delivery.Tail), written at about the same time, into one storage
// request. A delivery is a run of one partition: on a topic of many
// partitions at a modest rate each is a few messages, and written alone each was a
// request of a few spans — 776 requests a second of 6 spans each where the Collector's
// batch processor sends 5 of 1,000 (BenchmarkLiveTopic), paid for in CPU here (a request
// and its compression each) and in the backend. A request of a tenth of the batch size
// or more, or of a delivery short of its partition's end, is written alone, as before:
// under a backlog nothing waits, and nothing more is in memory than before (small
// deliveries cut where a response ended joined, and raised the peak RSS by 10–15%).
//
// The first small request opens a joint write and waits for others up to the linger; the
// joint write is sent when it holds the batch size (or 2 MiB), or the linger is over.
// Its first delivery keeps its slot of the parallelism, and sends it in that slot; the
// others give theirs back while they wait, so that the partitions' next deliveries can be
// formed to join. So the parallelism stays the number of storage writes at once (a joint
// write takes one slot), and what waits to be written stays bounded by it: a joint write
// a slot, each of at most the batch size. With a parallelism of 1 nothing could be formed
// to join meanwhile: each request goes alone. A delivery whose joint write failed holds a
// slot again, through its backoff, as one that failed alone does; nothing here waits for a
// slot (a slot waited for behind deliveries that wait for the bytes of parked ones would
// never come). Each delivery keeps its own
// outcome: when storage refuses a joint write for good (or for its size), every request
// in it is written alone, so that a bad message is isolated within its own delivery and
// no other delivery's messages are refused with it.
type jointWrites struct {
	writer Writer
	// spans seals a joint write at this many spans; requests of a tenth as many go alone.
	spans  int
	linger time.Duration
	// sent counts a storage request, failed one more that failed (a partial success is not
	// a failure): once for a joint write, whatever the deliveries in it.
	sent, failed func()

	mu   sync.Mutex
	open *jointWrite
}

// jointParts seals a joint write at this many requests: each waiting delivery holds its
// messages, a copy of its request and a goroutine (some kilobytes), which
// maxInFlightBytes does not count all of; the deliveries waiting are at most this many
// for each slot, and one joint write more. (At 32, the live topic's requests held 199
// spans, 25 a second, and took 10% more CPU than uncapped; at 64, about half as many.)
const jointParts = 64

// jointBytes bounds a joint write: one that a request would take past it is sent
// without it. A delivery's byte cut (2 MiB, past by at most a message): well under the
// 4 MiB that gRPC receivers take by default.
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

func newJointWrites(writer Writer, spans int, linger time.Duration, sent, failed func()) *jointWrites {
	return &jointWrites{writer: writer, spans: max(spans, 1), linger: linger, sent: sent, failed: failed}
}

// alone writes req by itself, for d, as one of the parallelism's storage writes.
func (j *jointWrites) alone(ctx context.Context, d *Delivery, req otlpwire.Request) error {
	return d.write(ctx, func() error {
		j.sent()
		err := j.writer.Write(ctx, req)
		if err != nil && failure.AsRejected(err) == nil {
			j.failed()
		}
		return err
	})
}

// write writes req, d's request, joined with others when it is small. A request that
// joins is copied first, and release is called: the decoding batch its pieces are views
// of goes back to its pool at once, rather than wait with it (a batch lends 256 KB of
// scratch; held by each waiting delivery, they raised the peak RSS by a third under a
// backlog over OTLP). Otherwise release is not called, and the caller keeps the batch
// until write returns.
func (j *jointWrites) write(ctx context.Context, d *Delivery, req otlpwire.Request, release func()) error {
	if !d.Tail || 10*req.Spans >= j.spans || j.linger <= 0 || !d.slotShared() {
		return j.alone(ctx, d, req)
	}
	req = otlpwire.Request{Pieces: [][]byte{req.AppendTo(make([]byte, 0, req.Len()))}, Spans: req.Spans}
	release()
	size := len(req.Pieces[0])
	j.mu.Lock()
	w := j.open
	if w != nil && w.bytes+size > jointBytes {
		j.seal(w) // sent as it is: what it holds and this would be too large together
		close(w.full)
		w = nil
	}
	leads := w == nil
	if leads {
		w = &jointWrite{full: make(chan struct{}), done: make(chan struct{})}
		j.open = w
	}
	part := len(w.parts)
	w.parts = append(w.parts, jointPart{ctx: ctx, req: req})
	w.spans, w.bytes = w.spans+req.Spans, w.bytes+size
	if w.spans >= j.spans || w.bytes >= jointBytes || len(w.parts) >= jointParts {
		j.seal(w)
		close(w.full)
	}
	j.mu.Unlock()

	if leads {
		j.lead(ctx, d, w)
	} else {
		d.vacateSlot() // others form deliveries to join meanwhile
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
			<-w.done // its bytes are being sent: a retry may not join before that
		}
	}
	if w.err != nil && !leads {
		// Retried after a backoff, or written alone now: as before joining, the delivery
		// holds a slot meanwhile (taken past the limit rather than waited for, behind
		// deliveries that may be waiting for its bytes).
		d.holdSlot()
	}
	if errors.Is(w.err, errWriteAlone) {
		return j.alone(ctx, d, req)
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

// lead waits for the requests that join w, then sends it in its delivery's slot, d's.
func (j *jointWrites) lead(ctx context.Context, d *Delivery, w *jointWrite) {
	timer := time.NewTimer(j.linger)
	d.lingering(true)
	select {
	case <-w.full:
	case <-timer.C:
	case <-ctx.Done():
	}
	d.lingering(false)
	timer.Stop()
	j.mu.Lock()
	j.seal(w)
	j.mu.Unlock()

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
	err := j.alone(writeCtx, d, joined)
	for _, stop := range stops {
		stop()
	}
	cancel()
	if requests > 1 && (failure.IsPermanent(err) || failure.IsTooLarge(err)) {
		err = errWriteAlone
	}
	if r := failure.AsRejected(err); r != nil && requests > 1 {
		err = &sharedRejection{Rejected: r, deliveries: requests, spans: joined.Spans}
	}
	w.err = err
	close(w.done)
}

// sharedRejection is a partial success of a joint write: its first delivery reports it,
// for the whole write (which spans the backend rejected, it does not say).
type sharedRejection struct {
	*failure.Rejected
	deliveries, spans int
}

func (s *sharedRejection) Unwrap() error { return s.Rejected }
