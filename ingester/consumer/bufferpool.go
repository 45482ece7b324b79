package consumer

import (
	"slices"
	"sync"
	"time"
)

// bufferPool keeps the buffers responses are read and batches decompressed into for
// reuse. A sync.Pool let go of what it held at every second collection, and the
// collections come every few milliseconds as a pod starts (the heap is small): under a
// backlog, half the response buffers a pod ever made were made again to replace ones
// dropped while its partitions' first responses were read, and the peak memory was set
// there. Buffers no taker needed for a while are let go instead: each trimInterval, as
// many as were never taken in it (the fewest free at any moment).
type bufferPool struct {
	mu   sync.Mutex
	free []*sharedBuffer // the most recently given back last
	// idle is the fewest buffers free since trimmed; trimmed is when that was.
	idle    int
	trimmed time.Time
	now     func() time.Time // time.Now; tests set it
}

// trimInterval is how long a free buffer may go untaken before it is let go.
const trimInterval = 10 * time.Second

// get returns a free buffer, held once (by the caller), or a new one without an array.
func (p *bufferPool) get() *sharedBuffer {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trim()
	var b *sharedBuffer
	if n := len(p.free); n > 0 {
		b = p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.idle = min(p.idle, len(p.free))
	} else {
		b = &sharedBuffer{pool: p}
	}
	b.refs.Store(1)
	return b
}

// put gives b back.
func (p *bufferPool) put(b *sharedBuffer) {
	b.b = b.b[:0]
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = append(p.free, b)
	p.trim()
}

// trimIdle lets go of what stayed free throughout the last trimInterval, if it has
// passed: the pools are trimmed as they are used, and by the consumer's commit ticker
// (a pod with nothing to fetch uses them not at all).
func (p *bufferPool) trimIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trim()
}

// trimBufferPools trims every pool of the consumer's buffers.
func trimBufferPools() {
	for _, p := range []*bufferPool{&responseBuffers, &decompressedBuffers, &copyChunks} {
		p.trimIdle()
	}
}

// trim lets go of the buffers that stayed free throughout the last trimInterval: the
// oldest ones, at the bottom of the stack. The caller holds mu.
func (p *bufferPool) trim() {
	now := p.clock()
	if now.Sub(p.trimmed) < trimInterval {
		return
	}
	// Delete zeroes the slots it empties: a copy of a kept buffer left past the new length
	// would keep it reachable after a later trim let it go.
	p.free = slices.Delete(p.free, 0, min(p.idle, len(p.free)))
	p.idle, p.trimmed = len(p.free), now
}

func (p *bufferPool) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}
