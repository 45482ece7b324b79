package processor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spanflow/spanflow/ingester/decode"
	"github.com/spanflow/spanflow/ingester/eventlog"
	"github.com/spanflow/spanflow/ingester/failure"
	"github.com/spanflow/spanflow/ingester/metrics"
	"github.com/spanflow/spanflow/ingester/otlpwire"
)

// Writer writes traces to storage; a nil error means they are durably stored. Errors are
// classified with the failure package: Permanent (refused for good), TooLarge (refused for
// its size), *failure.Rejected (a partial success, which counts as written); anything
// else is transient (the backend is down, throttling, refusing credentials).
type Writer interface {
	Write(ctx context.Context, req otlpwire.Request) error
}

type base struct {
	decoder  decode.Decoder
	writes   *jointWrites
	m        *metrics.Metrics
	rejected *eventlog.Repeated
	batches  sync.Pool // of *otlpwire.Batch, one for each write in flight
}

// NewBase returns the innermost processor: decode each pending message of the delivery and
// write their spans in one request. A message that cannot be decoded is marked Undecodable
// and the rest go on; an empty value or a tombstone is Empty. A write refused for good (or
// for its size) is split in halves, again and again, until the refused messages are
// isolated and marked Refused; the others are written. A transient failure is returned,
// leaving what was not written pending, for the retry decorator. A partial success counts
// as written: its rejected spans are counted and logged, never sent again.
//
// Requests of fewer than a tenth of batchSpans spans, of deliveries written at about the same
// time, are joined into one storage request of up to batchSpans spans, after waiting at
// most linger for others (0: each is written alone); see jointWrites.
func NewBase(decoder decode.Decoder, writer Writer, batchSpans int, linger time.Duration, m *metrics.Metrics, rejected *eventlog.Repeated) Processor {
	return &base{decoder: decoder, writes: newJointWrites(writer, batchSpans, linger, m.WriteRequests.Inc, m.WriteErrors.Inc), m: m, rejected: rejected,
		batches: sync.Pool{New: func() any { return new(otlpwire.Batch) }}}
}

func (b *base) Process(ctx context.Context, d *Delivery) error {
	pending := make([]int, 0, len(d.Messages))
	joinable := true
	for i := range d.Messages {
		if d.verdicts[i] == Pending {
			pending = append(pending, i)
			// A message storage refused for good before, tried again, would have every
			// write it joined refused and sent again, each delivery alone.
			if cause := d.Cause(i); failure.IsPermanent(cause) || failure.IsTooLarge(cause) {
				joinable = false
			}
		}
	}
	return b.write(ctx, d, pending, joinable)
}

// write decodes and writes the messages at idx (which it reorders in place), splitting
// the write when storage refuses it for good; joinable, joined with other deliveries'
// requests when it is small (the halves of a split go alone).
func (b *base) write(ctx context.Context, d *Delivery, idx []int, joinable bool) error {
	batch := b.batches.Get().(*otlpwire.Batch)
	batch.Reset()
	spans, holding := 0, 0
	for _, i := range idx {
		msg := &d.Messages[i]
		if len(msg.Value) == 0 {
			d.Set(i, Empty, nil)
			b.m.Empty.Inc()
			continue
		}
		// A message held for its decode error (onDecodeError: fail) is decoded again at
		// every attempt: it is counted once.
		retried := failure.IsDecode(d.Cause(i))
		resources := batch.Resources()
		n, err := b.decoder.Decode(batch, msg.Value)
		if err != nil {
			if !retried {
				b.m.DecodeErrors.Inc()
			}
			d.Set(i, Undecodable, failure.Decode(fmt.Errorf("decoding partition %d offset %d: %w", msg.Partition, msg.Offset, err)))
			continue
		}
		if n == 0 && batch.Resources() > resources {
			// A request of resources without spans: nothing to write.
			d.Set(i, Empty, nil)
			b.m.Empty.Inc()
			continue
		}
		if n == 0 {
			// Bytes that hold not even a resource are not a trace: most likely the topic is
			// read with the wrong encoding (an OTLP decoder takes `{"a":1}` or a Jaeger
			// span for an empty request), and committing past them would lose whatever
			// they are.
			if !retried {
				b.m.DecodeErrors.Inc()
			}
			d.Set(i, Undecodable, failure.Decode(fmt.Errorf("decoding partition %d offset %d: %d bytes and no span in them: is the topic's encoding the one configured?",
				msg.Partition, msg.Offset, len(msg.Value))))
			continue
		}
		spans += n
		idx[holding] = i
		holding++
	}
	idx = idx[:holding]
	d.Decoded() // the write may wait on the backend: the CPU turn goes on
	if holding == 0 {
		batch.Reset() // spanless resource spans may refer to the messages
		b.batches.Put(batch)
		return nil
	}
	// The writer keeps nothing of the request; the pool keeps no message.
	release := func() {
		batch.Reset()
		b.batches.Put(batch)
		batch = nil
	}
	var err error
	if joinable {
		err = b.writes.write(ctx, d, batch.Request(), release)
	} else {
		err = b.writes.alone(ctx, d, batch.Request())
	}
	if batch != nil {
		release()
	}
	if r := failure.AsRejected(err); r != nil {
		b.m.RejectedSpans.Add(float64(r.Spans))
		kv := []any{"partition", d.Partition.ID(), "fromOffset", d.Messages[idx[0]].Offset,
			"rejectedSpans", r.Spans, "spans", spans, "backendMessage", r.Message}
		var shared *sharedRejection
		if errors.As(err, &shared) {
			// Of a write shared with other deliveries (of other partitions, most likely):
			// the rejected spans are the write's.
			kv = append(kv, "writeDeliveries", shared.deliveries, "writeSpans", shared.spans)
		}
		b.rejected.Event(nil, kv...)
		err = nil
	}
	if err == nil {
		for _, i := range idx {
			d.Set(i, Written, nil)
		}
		d.Spans += spans
		b.m.Spans.Add(float64(spans))
		return nil
	}
	first := &d.Messages[idx[0]]
	if !failure.IsPermanent(err) && !failure.IsTooLarge(err) {
		return fmt.Errorf("writing %d messages of partition %d from offset %d: %w", holding, first.Partition, first.Offset, err)
	}
	if holding == 1 {
		d.Set(idx[0], Refused, fmt.Errorf("writing partition %d offset %d: %w", first.Partition, first.Offset, err))
		return nil
	}
	b.m.Splits.Inc()
	half := holding / 2
	if err := b.write(ctx, d, idx[:half], false); err != nil {
		return err
	}
	return b.write(ctx, d, idx[half:], false)
}
