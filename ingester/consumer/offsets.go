package consumer

import "sync"

// offsets tracks, per partition, the next offset to read after the messages processed so
// far, and what of it was committed.
type offsets struct {
	mu        sync.Mutex
	next      map[int]int64
	committed map[int]int64
}

func newOffsets() *offsets {
	return &offsets{next: map[int]int64{}, committed: map[int]int64{}}
}

// done records that the message at offset has been processed.
func (o *offsets) done(partition int, offset int64) {
	o.mu.Lock()
	o.next[partition] = offset + 1
	o.mu.Unlock()
}

// pending returns the offsets to commit: Kafka's committed offset is the next one to read.
func (o *offsets) pending() map[int]int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out map[int]int64
	for p, next := range o.next {
		if o.committed[p] != next {
			if out == nil {
				out = map[int]int64{}
			}
			out[p] = next
		}
	}
	return out
}

// markCommitted records offsets that Kafka accepted.
func (o *offsets) markCommitted(offsets map[int]int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for p, next := range offsets {
		o.committed[p] = next
	}
}
