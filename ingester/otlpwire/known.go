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
// benchmark's messages: 13% less a span). Two-way set-associative, the one used last
// first: each slot holds the bytes of one resource, in a buffer of its own that the next
// resource of that slot reuses, so that a fleet larger than the slots costs a copy, never
// an allocation.
//
// A slot also says which of a batch's merged ResourceSpans holds its resource, so that
// merging the resource spans of a delivery by resource costs no lookup of its own — and
// two resources of one set, alternating, do not keep replacing each other (with one slot
// a set, two of a fleet of 40 shared one, and each of their turns made a ResourceSpans).
type knownResources struct {
	sets [knownResourceSets][2]knownResource
}

// knownResource is a slot: a resource's bytes, and its merged ResourceSpans in the batch
// of epoch.
type knownResource struct {
	body  []byte
	epoch uint64
	group int
}

const (
	// knownResourceSets: 512 resources in all.
	knownResourceSets = 256
	// knownResourceMaxBytes bounds what a slot keeps (a larger resource is walked each
	// time): at most 512 KiB a cache.
	knownResourceMaxBytes = 1 << 10
)

var knownResourceSeed = maphash.MakeSeed()

// knownResourceCaches holds a cache for each decoding goroutine, about one a CPU: kept in
// a batch, there would be one for every write in flight, hundreds with a high parallelism.
var knownResourceCaches = sync.Pool{New: func() any { return new(knownResources) }}

// lookup returns body's slot, whether it holds body, and body's hash: the slot used last of
// its set if body is there, else the other, which becomes the one used last.
func (k *knownResources) lookup(body []byte) (slot *knownResource, known bool, hash uint64) {
	if len(body) == 0 || len(body) > knownResourceMaxBytes {
		return nil, false, 0
	}
	hash = maphash.Bytes(knownResourceSeed, body)
	set := &k.sets[hash%knownResourceSets]
	if bytes.Equal(set[0].body, body) {
		return &set[0], true, hash
	}
	set[0], set[1] = set[1], set[0]
	return &set[0], bytes.Equal(set[0].body, body), hash
}

// remember puts a resource found well-formed in its slot, from lookup; it is in no group.
func remember(slot *knownResource, body []byte) {
	if slot != nil {
		slot.body, slot.epoch = append(slot.body[:0], body...), 0
	}
}
