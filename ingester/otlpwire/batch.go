package otlpwire

import (
	"bytes"

	"google.golang.org/protobuf/encoding/protowire"
)

// Batch builds the ExportTraceServiceRequest of one write. Spans arrive either as whole
// encoded ResourceSpans (AppendRequest, AppendValidated), which the batch refers to where
// they are, or one by one under a resource and a scope (SpanBuffer), so that spans of the
// same process share one ResourceSpans instead of repeating it per span. A Batch is reused
// with Reset; its zero value is ready.
type Batch struct {
	whole   [][]byte // ResourceSpans entries, as field 1 of the request, where they arrived
	spans   int
	groups  []resourceGroup
	index   map[string]int // encoded Resource → position in groups
	out     []byte         // the groups, encoded
	request [][]byte       // whole and out: the pieces Request returns
}

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
	clear(b.whole)
	clear(b.request)
	b.whole, b.request, b.spans, b.out = b.whole[:0], b.request[:0], 0, b.out[:0]
	for i := range b.groups {
		g := &b.groups[i]
		for j := range g.scopes {
			g.scopes[j].scope, g.scopes[j].spans = g.scopes[j].scope[:0], g.scopes[j].spans[:0]
		}
		g.resource, g.scopes = g.resource[:0], g.scopes[:0]
	}
	b.groups = b.groups[:0]
	clear(b.index)
}

// Spans is the number of spans added so far.
func (b *Batch) Spans() int { return b.spans }

// AppendRequest adds an encoded ExportTraceServiceRequest (or TracesData) holding spans
// spans. Its bytes must be a sequence of ResourceSpans entries: what pdata marshals. The
// batch refers to req until Reset, which must not change meanwhile.
func (b *Batch) AppendRequest(req []byte, spans int) {
	if len(req) > 0 {
		b.whole = append(b.whole, req)
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

// AddSpans counts n spans appended to a SpanBuffer.
func (b *Batch) AddSpans(n int) { b.spans += n }

// Request returns the encoded request of everything added: the whole ResourceSpans where
// they arrived, then the groups of spans. It stays valid until the next Reset or Request.
func (b *Batch) Request() Request {
	if len(b.groups) == 0 {
		return Request{Pieces: b.whole, Spans: b.spans}
	}
	out := b.out[:0]
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
	b.request = append(append(b.request[:0], b.whole...), out)
	return Request{Pieces: b.request, Spans: b.spans}
}

func scopeSpansSize(s *scopeGroup) int {
	return protowire.SizeTag(scopeSpansScope) + protowire.SizeBytes(len(s.scope)) + len(s.spans)
}
