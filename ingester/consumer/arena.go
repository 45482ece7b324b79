package consumer

import (
	"bytes"
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
	// formed is how many messages the delivery holds (0: not said), the part of msgs to
	// clear: clearing its whole room, sized for a full delivery, was 4% of a pod's CPU on
	// a live topic of many partitions, where deliveries are a few messages.
	formed int
	// copied is how many of the first messages detach moved into the arena's own
	// chunks; chunk is the last of those, filled to its length.
	copied int
	chunk  *sharedBuffer
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

// detach moves the bytes of msgs (the delivery's messages so far; those before the
// last detach already moved) out of the fetched buffers they are slices of, into chunks
// of the arena's own, and lets go of those buffers — when the bytes are at most half of
// what the buffers hold. It reports whether the arena holds no fetched buffer now.
func (a *arena) detach(msgs []kafka.Message) bool {
	fresh := msgs[a.copied:]
	size := 0
	for i := range fresh {
		size += len(fresh[i].Key) + len(fresh[i].Value)
		for _, h := range fresh[i].Headers {
			size += len(h.Value)
		}
	}
	fetched := 0
	for _, b := range a.held {
		if b.pool != &copyChunks {
			fetched += cap(b.b)
		}
	}
	if fetched == 0 {
		return true
	}
	if size > fetched/2 {
		return false
	}
	// A small copy that does not fit the arena's chunk (a live topic's tail: a few
	// messages waiting out the linger, on each partition) gets an array of its own size,
	// left to the collector, rather than a chunk of 256 KB a partition.
	var small *[]byte
	if size < smallCopy && (a.chunk == nil || cap(a.chunk.b)-len(a.chunk.b) < size) {
		block := make([]byte, 0, size)
		small = &block
	}
	for i := range fresh {
		m := &fresh[i]
		m.Key, m.Value = a.copy(m.Key, small), a.copy(m.Value, small)
		for j := range m.Headers { // the record's own headers, made as it was read
			m.Headers[j].Value = a.copy(m.Headers[j].Value, small)
		}
	}
	a.copied = len(msgs)
	kept := a.held[:0]
	for _, b := range a.held {
		if b.pool == &copyChunks {
			kept = append(kept, b)
		} else {
			b.release()
		}
	}
	clear(a.held[len(kept):])
	a.held = kept
	return true
}

// copyChunkSize is the size of the chunks detach copies messages into; a larger message
// gets an array of its own. smallCopy is what detach copies into an array of its own
// size instead.
const (
	copyChunkSize = 256 << 10
	smallCopy     = 32 << 10
)

// copyChunks pools the chunks, apart from the fetched buffers: all of one size, a chunk
// taken always fits.
var copyChunks bufferPool

// copy returns b's bytes in the arena's own memory (nil stays nil): appended to small
// when it is not nil, which has room for them.
func (a *arena) copy(b []byte, small *[]byte) []byte {
	switch {
	case b == nil:
		return nil
	case len(b) == 0:
		return []byte{}
	case small != nil:
		start := len(*small)
		*small = append(*small, b...)
		return (*small)[start:len(*small):len(*small)]
	case len(b) > copyChunkSize:
		return bytes.Clone(b)
	}
	if a.chunk == nil || cap(a.chunk.b)-len(a.chunk.b) < len(b) {
		a.chunk = copyChunks.get() // held once: by the arena
		if cap(a.chunk.b) < copyChunkSize {
			a.chunk.b = make([]byte, 0, copyChunkSize)
		}
		a.held = append(a.held, a.chunk)
	}
	start := len(a.chunk.b)
	a.chunk.b = append(a.chunk.b, b...)
	return a.chunk.b[start:len(a.chunk.b):len(a.chunk.b)]
}

// release lets go of the arena's buffers. Nothing may read the bytes of its messages
// afterwards.
func (a *arena) release() {
	for _, b := range a.held {
		b.release()
	}
	a.held = nil
	a.chunk, a.copied = nil, 0
	a.putMessages()
}

// putMessages clears the pooled slice of messages and gives it back.
func (a *arena) putMessages() {
	if a.msgs == nil {
		return
	}
	used := cap(*a.msgs)
	if a.formed > 0 {
		used = min(a.formed, used) // the rest was cleared before it was pooled
	}
	clear((*a.msgs)[:used]) // keeps no bytes of the delivery reachable
	messagePool.Put(a.msgs)
	a.msgs, a.formed = nil, 0
}

// fit returns msgs, the delivery's messages, in a slice of their own size when they are
// few next to the pooled slice's room (sized for a full delivery: 150 KB at a thousand
// messages), which goes back to the pool: a live partition's delivery of a few messages
// may wait a while to share a write.
func (a *arena) fit(msgs []kafka.Message) []kafka.Message {
	if a.msgs == nil || 10*len(msgs) >= cap(*a.msgs) {
		return msgs
	}
	own := slices.Clone(msgs)
	a.formed = len(msgs)
	a.putMessages()
	return own
}

// sharedBuffer is a buffer a fetched response was read, or its compressed batches
// decompressed, into; its fetcher and the arenas of the deliveries with messages in it
// hold it.
type sharedBuffer struct {
	b    []byte
	refs atomic.Int32
	pool *bufferPool // where it goes back to
}

// The buffers responses are read into, and those their batches are decompressed into,
// are pooled apart: a response's buffer taken for an uncompressed topic's (unused)
// decompressed batches sent the response to a new allocation.
var responseBuffers, decompressedBuffers bufferPool

// release lets go of b; the last to let go gives it back to its pool.
func (b *sharedBuffer) release() {
	if b.refs.Add(-1) == 0 {
		b.pool.put(b)
	}
}
