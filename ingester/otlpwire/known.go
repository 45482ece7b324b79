package otlpwire

import (
	"bytes"
	"hash/maphash"
	"sync"
)

// knownResources remembers Resource messages the walk found well-formed, by their bytes,
// so that a pod's resource, repeated in message after message, is walked once: as the
// Collector's Kafka exporter writes them, a message of one trace holds about one resource
// a span, and looking one up costs a third of walking it (the walk of the peers
// benchmark's messages: 13% less a span). Direct-mapped: each slot holds the bytes of one
// resource, in a buffer of its own that the next resource of that slot reuses, so that a
// fleet larger than the slots costs a copy, never an allocation.
type knownResources struct {
	slots [knownResourceSlots][]byte
}

const (
	// knownResourceSlots: with 40 resources, one in sixteen shares its slot.
	knownResourceSlots = 512
	// knownResourceMaxBytes bounds what a slot keeps (a larger resource is walked each
	// time): at most 512 KiB a cache.
	knownResourceMaxBytes = 1 << 10
)

var knownResourceSeed = maphash.MakeSeed()

// knownResourceCaches holds a cache for each decoding goroutine, about one a CPU: kept in
// a batch, there would be one for every write in flight, hundreds with a high parallelism.
var knownResourceCaches = sync.Pool{New: func() any { return new(knownResources) }}

// lookup returns body's slot, and whether it holds body.
func (k *knownResources) lookup(body []byte) (slot *[]byte, known bool) {
	if len(body) == 0 || len(body) > knownResourceMaxBytes {
		return nil, false
	}
	slot = &k.slots[maphash.Bytes(knownResourceSeed, body)%knownResourceSlots]
	return slot, bytes.Equal(*slot, body)
}

// remember puts a resource found well-formed in its slot, from lookup.
func remember(slot *[]byte, body []byte) {
	if slot != nil {
		*slot = append((*slot)[:0], body...)
	}
}
