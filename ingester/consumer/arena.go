package consumer

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/segmentio/kafka-go"
)

// arena holds what one delivery's messages are slices of — the fetched responses (and
// decompressed batches) they came in — until the delivery is finished: nothing reads a
// delivery's messages after its partition was told it is done. A response's buffer goes
// back to its pool once every delivery with a message in it, and its fetcher, let go of
// it. Buffers never given back (a delivery left unfinished, a partition revoked) are
// simply collected.
//
// Why: copying each message out of its response into a buffer of the delivery's own was
// a tenth of the CPU of reading otlp_proto (and, into fresh buffers, every byte read
// from Kafka was a new allocation).
type arena struct {
	held []*sharedBuffer
	// msgs is the delivery's slice of messages, pooled with the bytes: sized once for a
	// delivery (growing it copies every message), it was most of what the consumer
	// allocated.
	msgs *[]kafka.Message
}

var messagePool sync.Pool // of *[]kafka.Message

// messages returns an empty slice of room for n messages, the delivery's until release.
func (a *arena) messages(n int) []kafka.Message {
	a.msgs, _ = messagePool.Get().(*[]kafka.Message)
	if a.msgs == nil || cap(*a.msgs) < n {
		s := make([]kafka.Message, 0, n)
		a.msgs = &s
	}
	return (*a.msgs)[:0]
}

// hold keeps b until release. The caller holds b meanwhile.
func (a *arena) hold(b *sharedBuffer) {
	if n := len(a.held); n > 0 && a.held[n-1] == b || slices.Contains(a.held, b) {
		return
	}
	b.refs.Add(1)
	a.held = append(a.held, b)
}

// release lets go of the arena's buffers. Nothing may read the bytes of its messages
// afterwards.
func (a *arena) release() {
	for _, b := range a.held {
		b.release()
	}
	a.held = nil
	if a.msgs != nil {
		clear((*a.msgs)[:cap(*a.msgs)]) // keeps no bytes of the delivery reachable
		messagePool.Put(a.msgs)
		a.msgs = nil
	}
}

// sharedBuffer is a buffer a fetched response was read, or its compressed batches
// decompressed, into; its fetcher and the arenas of the deliveries with messages in it
// hold it.
type sharedBuffer struct {
	b    []byte
	refs atomic.Int32
	pool *sync.Pool // where it goes back to
}

// The buffers responses are read into, and those their batches are decompressed into,
// are pooled apart: a response's buffer taken for an uncompressed topic's (unused)
// decompressed batches sent the response to a new allocation.
var responseBuffers, decompressedBuffers sync.Pool // of *sharedBuffer

// takeBuffer returns a buffer from pool, held once (by the caller).
func takeBuffer(pool *sync.Pool) *sharedBuffer {
	b, _ := pool.Get().(*sharedBuffer)
	if b == nil {
		b = &sharedBuffer{pool: pool}
	}
	b.refs.Store(1)
	return b
}

// release lets go of b; the last to let go gives it back to its pool.
func (b *sharedBuffer) release() {
	if b.refs.Add(-1) == 0 {
		b.b = b.b[:0]
		b.pool.Put(b)
	}
}
