package consumer

import (
	"sync"

	"github.com/segmentio/kafka-go"
)

// arena holds the keys, values and header values of one delivery's messages in chunks
// taken from pools, given back when the delivery is finished: nothing reads a delivery's
// messages after its partition was told it is done. Chunks never given back (a delivery
// left unfinished, a partition revoked) are simply collected.
//
// Why: copied into fresh buffers, every byte read from Kafka was a new allocation, and
// the collector's work and the heap's size followed the topic's throughput instead of the
// bytes in flight.
type arena struct {
	chunks []*[]byte // the pooled chunks, given back by release
	buf    []byte    // the part of the last chunk not yet used
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

// chunkSizes are the pooled chunk sizes: a quiet partition's single message takes a small
// one, a delivery out of a backlog 64 KB ones. A message larger than the largest gets a
// buffer of its own, not pooled.
var chunkSizes = [...]int{4 << 10, 16 << 10, 64 << 10}

var chunkPools [len(chunkSizes)]sync.Pool

// copyBytes copies b into the arena and returns the copy (nil for nil).
func (a *arena) copyBytes(b []byte, want int) []byte {
	if b == nil {
		return nil
	}
	if len(b) == 0 {
		return []byte{}
	}
	out := a.room(len(b), want)
	copy(out, b)
	return out
}

// room returns the next n bytes of the arena.
func (a *arena) room(n, want int) []byte {
	if len(a.buf) < n {
		a.buf = a.newChunk(n, max(n, want))
	}
	out := a.buf[:n:n]
	a.buf = a.buf[n:]
	return out
}

// newChunk takes the smallest pooled chunk that holds want bytes (the largest when none
// does) or, when n fits in none, a buffer of n bytes.
func (a *arena) newChunk(n, want int) []byte {
	for i, size := range chunkSizes {
		if size < want && i < len(chunkSizes)-1 {
			continue
		}
		if size < n {
			break
		}
		chunk, _ := chunkPools[i].Get().(*[]byte)
		if chunk == nil {
			b := make([]byte, size)
			chunk = &b
		}
		a.chunks = append(a.chunks, chunk)
		return *chunk
	}
	return make([]byte, n)
}

// release gives the arena's chunks back to their pools. Nothing may read the bytes it
// handed out afterwards.
func (a *arena) release() {
	for _, chunk := range a.chunks {
		for i, size := range chunkSizes {
			if cap(*chunk) == size {
				chunkPools[i].Put(chunk)
			}
		}
	}
	a.chunks, a.buf = nil, nil
	if a.msgs != nil {
		clear((*a.msgs)[:cap(*a.msgs)]) // keeps no bytes of the delivery reachable
		messagePool.Put(a.msgs)
		a.msgs = nil
	}
}
