package otlpwire

import (
	"bytes"
	"slices"
	"sync/atomic"

	"google.golang.org/protobuf/encoding/protowire"
)

// Batch builds the ExportTraceServiceRequest of one write. Spans arrive either as whole
// encoded ResourceSpans (AppendRequest, AppendValidated), which the batch refers to where
// they are — those of one resource merged into one ResourceSpans, its parts still where
// they arrived —, or one by one under a resource and a scope (SpanBuffer), so that spans
// of the same process share one ResourceSpans instead of repeating it per span. A Batch is
// reused with Reset; its zero value is ready.
type Batch struct {
	// entries are the ResourceSpans in the order they first arrived: runs of them as
	// field 1 of the request, where they arrived, and merged ones.
	entries []batchEntry
	spans   int
	// resources counts the ResourceSpans given (AppendValidated, AppendRequest), spanless
	// ones too: a request of resources without spans is empty, bytes without any are not
	// a request.
	resources int
	merged    []mergedResourceSpans
	// known is the cache of resources the walk found well-formed, held from the first
	// AppendValidated to Request or Reset — the decoding of one delivery, so there are
	// about as many as CPUs — and epoch names this use of it to its slots, which say
	// which of merged holds their resource.
	known   *knownResources
	epoch   uint64
	journal []int              // the merged entries the current AppendValidated added scope spans to
	parts   resourceSpansParts // of the ResourceSpans being walked
	// byHash finds a resource's merged entry (the last made) by its hash when its slot in
	// the cache no longer names it; checked against the bytes.
	byHash  map[uint64]int
	groups  []resourceGroup
	index   map[string]int // encoded Resource → position in groups
	out     []byte         // the groups, and the merged entries' tags and lengths, encoded
	request [][]byte       // entries and out: the pieces Request returns
	// scratch is memory the batch lends for messages its caller encodes (Scratch), in
	// chunks reused after Reset; the current chunk is scratch[chunk], used bytes of it kept.
	scratch     [][]byte
	chunk, used int
}

// scratchChunk is the size of the chunks Scratch lends from: a few dozen messages.
const scratchChunk = 256 << 10

// batchEntry is a run of ResourceSpans entries sent as they came, or (piece nil) the
// merged ResourceSpans of index merged.
type batchEntry struct {
	piece  []byte
	merged int
}

// mergedResourceSpans is the ResourceSpans of one resource and schema URL: its fields as
// they arrived, whole (tag and length too), scope spans from every message that had them.
type mergedResourceSpans struct {
	resource, resourceBody, schema []byte // resourceBody: the resource's message, inside resource
	scopes                         [][]byte
	size                           int // of the message: its fields
	header, body                   int // where its tag and length are in out, once encoded
	// sameResource is the merged entry of the same resource and another schema URL made
	// before this one, or -1.
	sameResource int
}

// epochs counts the uses of batches, for their epoch.
var epochs atomic.Uint64

// resourceGroup is the spans of one resource, by scope.
type resourceGroup struct {
	resource []byte // the encoded Resource message
	scopes   []scopeGroup
}

type scopeGroup struct {
	scope []byte // the encoded InstrumentationScope message
	spans []byte // Span entries, as field 2 of ScopeSpans
}

// Reset empties the batch, keeping its memory but none of the bytes it was given.
func (b *Batch) Reset() {
	clear(b.entries)
	clear(b.request)
	b.entries, b.request, b.spans, b.resources, b.out = b.entries[:0], b.request[:0], 0, 0, b.out[:0]
	b.unmerge(0)
	b.releaseKnown()
	clear(b.byHash)
	for i := range b.groups {
		g := &b.groups[i]
		for j := range g.scopes {
			g.scopes[j].scope, g.scopes[j].spans = g.scopes[j].scope[:0], g.scopes[j].spans[:0]
		}
		g.resource, g.scopes = g.resource[:0], g.scopes[:0]
	}
	b.groups = b.groups[:0]
	clear(b.index)
	// A chunk lent for one large message is let go: kept, it would hold its size for as
	// long as the batch is reused.
	b.scratch = slices.DeleteFunc(b.scratch, func(c []byte) bool { return len(c) > scratchChunk })
	b.chunk, b.used = 0, 0
}

// Scratch returns room for a message of at most n bytes that the caller encodes and then
// appends (AppendValidated, AppendRequest): an empty slice of capacity n that the batch
// keeps until Reset, from memory it reuses after that, so that a decoder that encodes
// each message anew does not allocate for it. Keep says how much of it the message took;
// without it the room is lent again.
func (b *Batch) Scratch(n int) []byte {
	for ; b.chunk < len(b.scratch); b.chunk, b.used = b.chunk+1, 0 {
		if c := b.scratch[b.chunk]; len(c)-b.used >= n {
			return c[b.used : b.used : b.used+n]
		}
	}
	b.scratch = append(b.scratch, make([]byte, max(scratchChunk, n)))
	b.chunk, b.used = len(b.scratch)-1, 0
	return b.scratch[b.chunk][:0:n]
}

// Keep keeps the first n bytes of what the last Scratch lent, which a message appended
// to the batch now holds.
func (b *Batch) Keep(n int) { b.used += n }

// Spans is the number of spans added so far.
func (b *Batch) Spans() int { return b.spans }

// Resources is the number of ResourceSpans given so far, spanless ones included (pdata's
// marshalled requests count as one).
func (b *Batch) Resources() int { return b.resources }

// AppendRequest adds an encoded ExportTraceServiceRequest (or TracesData) holding spans
// spans. Its bytes must be a sequence of ResourceSpans entries: what pdata marshals. The
// batch refers to req until Reset, which must not change meanwhile.
func (b *Batch) AppendRequest(req []byte, spans int) {
	if len(req) > 0 {
		b.entries = append(b.entries, batchEntry{piece: req})
		b.resources++
	}
	b.spans += spans
}

// SpanBuffer returns the buffer that Span entries (field 2 of ScopeSpans, encoded with
// AppendSpanEntry) of the given resource and scope go into; resource and scope are encoded
// Resource and InstrumentationScope messages, compared as bytes. The caller counts each
// span it appends with AddSpans.
func (b *Batch) SpanBuffer(resource, scope []byte) *[]byte {
	gi, ok := b.index[string(resource)]
	if !ok {
		if b.index == nil {
			b.index = map[string]int{}
		}
		gi = len(b.groups)
		if gi < cap(b.groups) {
			b.groups = b.groups[:gi+1]
		} else {
			b.groups = append(b.groups, resourceGroup{})
		}
		b.groups[gi].resource = append(b.groups[gi].resource[:0], resource...)
		b.index[string(resource)] = gi
	}
	g := &b.groups[gi]
	for i := range g.scopes {
		if bytes.Equal(g.scopes[i].scope, scope) {
			return &g.scopes[i].spans
		}
	}
	si := len(g.scopes)
	if si < cap(g.scopes) {
		g.scopes = g.scopes[:si+1]
	} else {
		g.scopes = append(g.scopes, scopeGroup{})
	}
	g.scopes[si].scope = append(g.scopes[si].scope[:0], scope...)
	g.scopes[si].spans = g.scopes[si].spans[:0]
	return &g.scopes[si].spans
}

// merge adds the well-formed ResourceSpans p to the merged one of its resource and schema
// URL, or makes it one.
func (b *Batch) merge(p *resourceSpansParts) {
	slot, sameResource := p.slot, -1
	if slot.epoch != b.epoch {
		// Not linked in this batch: new to it, or its slot was taken by another resource
		// of its set since (three of a fleet of 40 share a set about once in seven).
		if i, ok := b.byHash[p.hash]; ok && i < len(b.merged) && bytes.Equal(b.merged[i].resourceBody, p.body) {
			slot.epoch, slot.group = b.epoch, i
		}
	}
	if slot.epoch == b.epoch {
		for i := slot.group; i >= 0; i = b.merged[i].sameResource {
			if m := &b.merged[i]; len(m.schema) == len(p.schema) && (len(p.schema) == 0 || bytes.Equal(m.schema, p.schema)) {
				m.scopes = append(m.scopes, p.scopes)
				m.size += len(p.scopes)
				b.journal = append(b.journal, i)
				return
			}
		}
		sameResource = slot.group
	}
	i := len(b.merged)
	if i < cap(b.merged) {
		b.merged = b.merged[:i+1]
	} else {
		b.merged = append(b.merged, mergedResourceSpans{})
	}
	m := &b.merged[i]
	m.resource, m.resourceBody, m.schema, m.scopes = p.resource, p.body, p.schema, append(m.scopes[:0], p.scopes)
	m.size = len(p.resource) + len(p.scopes) + len(p.schema)
	m.sameResource = sameResource
	b.entries = append(b.entries, batchEntry{merged: i})
	slot.epoch, slot.group = b.epoch, i
	if b.byHash == nil {
		b.byHash = map[uint64]int{}
	}
	b.byHash[p.hash] = i
}

// unmerge takes back what merge did since the journal began, keeping the first keep
// merged entries, and gives the batch a new epoch: slots may name entries that are gone.
func (b *Batch) unmerge(keep int) {
	for _, i := range slices.Backward(b.journal) {
		if i < keep {
			m := &b.merged[i]
			last := len(m.scopes) - 1
			m.size -= len(m.scopes[last])
			m.scopes[last] = nil
			m.scopes = m.scopes[:last]
		}
	}
	b.journal = b.journal[:0]
	for i := keep; i < len(b.merged); i++ {
		m := &b.merged[i]
		clear(m.scopes)
		m.resource, m.resourceBody, m.schema, m.scopes = nil, nil, nil, m.scopes[:0]
	}
	b.merged = b.merged[:keep]
	b.epoch = epochs.Add(1)
}

// AddSpans counts n spans appended to a SpanBuffer.
func (b *Batch) AddSpans(n int) { b.spans += n }

// releaseKnown gives the resource cache back; spans added later merge only with each other.
func (b *Batch) releaseKnown() {
	b.parts = resourceSpansParts{} // nor the last message's bytes, nor a slot of the cache
	if b.known != nil {
		knownResourceCaches.Put(b.known)
		b.known = nil
	}
}

// Request returns the encoded request of everything added: the ResourceSpans in the order
// they first arrived (one of a resource merged where the first of it was), then the groups
// of spans. It stays valid until the next Reset or Request.
func (b *Batch) Request() Request {
	b.releaseKnown()
	out := b.out[:0]
	for i := range b.merged {
		m := &b.merged[i]
		m.header = len(out)
		out = protowire.AppendTag(out, requestResourceSpans, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(m.size))
		m.body = len(out)
	}
	groups := len(out)
	for i := range b.groups {
		g := &b.groups[i]
		size := protowire.SizeTag(resourceSpansResource) + protowire.SizeBytes(len(g.resource))
		for j := range g.scopes {
			size += protowire.SizeTag(resourceSpansScopeSpans) + protowire.SizeBytes(scopeSpansSize(&g.scopes[j]))
		}
		out = protowire.AppendTag(out, requestResourceSpans, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(size))
		out = protowire.AppendTag(out, resourceSpansResource, protowire.BytesType)
		out = protowire.AppendBytes(out, g.resource)
		for j := range g.scopes {
			s := &g.scopes[j]
			out = protowire.AppendTag(out, resourceSpansScopeSpans, protowire.BytesType)
			out = protowire.AppendVarint(out, uint64(scopeSpansSize(s)))
			out = protowire.AppendTag(out, scopeSpansScope, protowire.BytesType)
			out = protowire.AppendBytes(out, s.scope)
			out = append(out, s.spans...)
		}
	}
	b.out = out
	request := b.request[:0]
	for _, e := range b.entries {
		if e.piece != nil {
			request = append(request, e.piece)
			continue
		}
		m := &b.merged[e.merged]
		request = append(request, out[m.header:m.body], m.resource)
		request = append(request, m.scopes...)
		if m.schema != nil {
			request = append(request, m.schema)
		}
	}
	if len(out) > groups {
		request = append(request, out[groups:])
	}
	b.request = request
	return Request{Pieces: b.request, Spans: b.spans}
}

func scopeSpansSize(s *scopeGroup) int {
	return protowire.SizeTag(scopeSpansScope) + protowire.SizeBytes(len(s.scope)) + len(s.spans)
}
