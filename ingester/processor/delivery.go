package processor

import (
	"context"
	"errors"

	"github.com/segmentio/kafka-go"
)

// Partition is the chain's handle on the partition a delivery came from, passed with the
// delivery (never looked up from a context).
type Partition interface {
	// ID is the partition's number.
	ID() int
	// Done records that every message of d is finished, so its offsets may be committed.
	Done(d *Delivery)
	// Hold pauses the partition for reason until the returned release is called: the
	// consumer stops fetching it and reports not-ready while any hold is open. Holds are
	// counted, so the partition resumes only when every one of them is released.
	Hold(reason error) (release func())
	// Revoked is closed when the partition is taken away (a rebalance, a stop): a delivery
	// still waiting to be handed over is not, and is read again by the next owner.
	Revoked() <-chan struct{}
}

// ErrRevoked is what Parallel.Process returns for a delivery of a revoked partition that
// was not handed over: it is unfinished, and nothing of it was processed.
var ErrRevoked = errors.New("partition revoked before the delivery was handed over")

// Verdict is what became of one message of a delivery.
type Verdict uint8

const (
	// Pending: not yet written, or to be tried again.
	Pending Verdict = iota
	// Written: its spans are durably stored.
	Written
	// Empty: it holds no spans (an empty value, a tombstone, a request with no spans).
	Empty
	// Skipped: undecodable, and skipped because onDecodeError is skip.
	Skipped
	// DeadLettered: produced to the dead-letter topic.
	DeadLettered
	// Undecodable: its bytes are not the configured encoding; the failure policy decides.
	Undecodable
	// Refused: storage refused its spans for good; the failure policy decides.
	Refused
)

var verdictNames = [...]string{"pending", "written", "empty", "skipped", "dead-lettered", "undecodable", "refused"}

func (v Verdict) String() string { return verdictNames[v] }

// Finished reports whether nothing more is to be done for a message with this verdict.
func (v Verdict) Finished() bool { return v >= Written && v <= DeadLettered }

// Delivery is a run of consecutive messages of one partition, processed together: decoded
// message by message, written in one storage request (shared with other deliveries when
// it is small: see jointWrites), committed as one offset range. Each
// message keeps its own verdict, so one bad message never decides the fate of the others.
type Delivery struct {
	// Partition is the handle of the messages' partition.
	Partition Partition
	// Messages are consecutive messages of the partition, in offset order.
	Messages []kafka.Message
	// Spans counts the spans written so far (rejected ones of a partial success included).
	Spans int
	// Tail is true of a delivery that ends where its partition ended when it was formed:
	// a live partition's run, small because little was there. A small one may share its
	// write with others (see jointWrites); a backlog's deliveries are written alone.
	Tail bool

	bytes    int64
	verdicts []Verdict
	causes   []error // allocated on the first failure
	// decoded gives back what the delivery held while it was formed and decoded (its
	// turn on a CPU); nil once given back, or when it held nothing.
	decoded func()
	// slot is the delivery's slot of the parallelism while it is processed (nil outside
	// a Parallel): given back while it waits to join a write, taken again to write.
	slot *slot
}

// slot is a delivery's hold on its slot of the parallelism; shared reports whether the
// parallelism has other slots.
type slot struct {
	vacate, hold func()
	shared       func() bool
	linger       func(on bool)
	write        func(ctx context.Context, w func() error) error
}

// lingering tells the parallelism that the delivery's slot waits for others to join its
// write (on: not busy), or works again (off).
func (d *Delivery) lingering(on bool) {
	if d.slot != nil {
		d.slot.linger(on)
	}
}

// write runs w, a storage write, once the parallelism allows one more (at once outside a
// Parallel); ctx's error if ctx ends first.
func (d *Delivery) write(ctx context.Context, w func() error) error {
	if d.slot == nil {
		return w()
	}
	return d.slot.write(ctx, w)
}

// slotShared reports whether other deliveries may be in flight beside this one (true
// outside a Parallel).
func (d *Delivery) slotShared() bool { return d.slot == nil || d.slot.shared() }

// vacateSlot gives the delivery's slot back while it waits for others' work.
func (d *Delivery) vacateSlot() {
	if d.slot != nil {
		d.slot.vacate()
	}
}

// holdSlot takes the delivery's slot again, at once, past the limit if it must.
func (d *Delivery) holdSlot() {
	if d.slot != nil {
		d.slot.hold()
	}
}

// Decoded tells the delivery its messages are decoded: what it held for forming and
// decoding it is given back. Later calls do nothing.
func (d *Delivery) Decoded() {
	if release := d.decoded; release != nil {
		d.decoded = nil
		release()
	}
}

// NewDelivery returns a delivery of msgs, every one pending. It must hold a message.
func NewDelivery(p Partition, msgs []kafka.Message) *Delivery {
	var bytes int64
	for i := range msgs {
		bytes += int64(len(msgs[i].Value))
	}
	return &Delivery{Partition: p, Messages: msgs, bytes: bytes, verdicts: make([]Verdict, len(msgs))}
}

// First is the offset of the first message; it names the delivery in the offset tracker.
func (d *Delivery) First() int64 { return d.Messages[0].Offset }

// Last is the offset of the last message.
func (d *Delivery) Last() int64 { return d.Messages[len(d.Messages)-1].Offset }

// Bytes is the size of the messages' values.
func (d *Delivery) Bytes() int64 { return d.bytes }

// Verdict returns the verdict of message i.
func (d *Delivery) Verdict(i int) Verdict { return d.verdicts[i] }

// Cause returns why message i was undecodable or refused, or nil.
func (d *Delivery) Cause(i int) error {
	if d.causes == nil {
		return nil
	}
	return d.causes[i]
}

// Set records the verdict of message i and, for a failure, its cause.
func (d *Delivery) Set(i int, v Verdict, cause error) {
	d.verdicts[i] = v
	if cause != nil && d.causes == nil {
		d.causes = make([]error, len(d.verdicts))
	}
	if d.causes != nil {
		d.causes[i] = cause
	}
}

// reopen makes message i pending again, for another attempt; its cause stays, as what the
// last attempt met.
func (d *Delivery) reopen(i int) { d.verdicts[i] = Pending }

// Count returns how many messages have verdict v.
func (d *Delivery) Count(v Verdict) int {
	n := 0
	for _, got := range d.verdicts {
		if got == v {
			n++
		}
	}
	return n
}

// Finished reports whether every message is finished.
func (d *Delivery) Finished() bool {
	for _, v := range d.verdicts {
		if !v.Finished() {
			return false
		}
	}
	return true
}
