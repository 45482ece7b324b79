package otlpwire

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestCloseFieldLengths writes bodies whose lengths take one, two, three and four varint
// bytes behind a prefix, and reads them back.
func TestCloseFieldLengths(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 300, 16383, 16384, 2_097_151, 2_097_152} {
		body := bytes.Repeat([]byte{0xab}, n)
		out, start := OpenField([]byte("prefix"), 9)
		out = append(out, body...)
		out = CloseField(out, start)
		num, typ, tagLen := protowire.ConsumeTag(out[len("prefix"):])
		got, m := protowire.ConsumeBytes(out[len("prefix")+tagLen:])
		if num != 9 || typ != protowire.BytesType || m < 0 || !bytes.Equal(got, body) || len("prefix")+tagLen+m != len(out) {
			t.Fatalf("a body of %d bytes read back as field %d type %d, %d bytes (consumed %d of %d)", n, num, typ, len(got), m, len(out))
		}
	}
}

// TestBatchGroupsByResourceAndScope adds spans under two resources and scopes, with a
// whole request beside them, and reads the request back with pdata.
func TestBatchGroupsByResourceAndScope(t *testing.T) {
	resource := func(service string) []byte {
		kv := cat(field(KeyValueKey, protowire.BytesType, []byte("service.name")),
			field(KeyValueValue, protowire.BytesType, field(ValueString, protowire.BytesType, []byte(service))))
		return field(ResourceAttributes, protowire.BytesType, kv)
	}
	scope := func(name string) []byte { return field(ScopeName, protowire.BytesType, []byte(name)) }
	span := func(name string) []byte { return field(SpanName, protowire.BytesType, []byte(name)) }
	var b Batch
	for round := range 2 { // the second round reuses the memory of the first
		b.Reset()
		whole := marshal(t, richTraces())
		if _, err := b.AppendValidated(whole); err != nil {
			t.Fatal(err)
		}
		for _, s := range []struct{ service, scope, span string }{
			{"a", "x", "a/x/1"}, {"b", "x", "b/x/1"}, {"a", "y", "a/y/1"}, {"a", "x", "a/x/2"},
		} {
			buf := b.SpanBuffer(resource(s.service), scope(s.scope))
			out, body := OpenSpan(*buf)
			out = append(out, span(s.span)...)
			*buf = CloseField(out, body)
			b.AddSpans(1)
		}
		td, err := b.Request().Traces()
		if err != nil {
			t.Fatal(err)
		}
		if b.Spans() != td.SpanCount() || td.SpanCount() != richTraces().SpanCount()+4 {
			t.Fatalf("round %d: the batch counts %d spans, the request holds %d", round, b.Spans(), td.SpanCount())
		}
		// The whole request's resources, then a and b; a holds scopes x (two spans) and y.
		rss := td.ResourceSpans()
		whole0 := richTraces().ResourceSpans().Len()
		if rss.Len() != whole0+2 {
			t.Fatalf("round %d: %d resource spans, want %d", round, rss.Len(), whole0+2)
		}
		a := rss.At(whole0)
		if v, _ := a.Resource().Attributes().Get("service.name"); v.Str() != "a" || a.ScopeSpans().Len() != 2 ||
			a.ScopeSpans().At(0).Scope().Name() != "x" || a.ScopeSpans().At(0).Spans().Len() != 2 ||
			a.ScopeSpans().At(0).Spans().At(1).Name() != "a/x/2" || a.ScopeSpans().At(1).Spans().At(0).Name() != "a/y/1" {
			t.Fatalf("round %d: resource a holds %s", round, jsonOf(t, td))
		}
	}
}

// TestScratchLendsWhatItKeeps: what Keep kept is never lent again before Reset, what it did
// not is, a Reset lends the same memory again, and a chunk made for one large message is
// let go at Reset.
func TestScratchLendsWhatItKeeps(t *testing.T) {
	var b Batch
	first := b.Scratch(100)
	first = append(first, "kept"...)
	b.Keep(len(first))
	second := b.Scratch(100)
	if &second[:1][0] == &first[:1][0] {
		t.Fatal("kept bytes lent again")
	}
	second = append(second, "left"...)
	if again := b.Scratch(100); &again[:1][0] != &second[:1][0] {
		t.Error("bytes not kept were not lent again")
	}
	if string(first) != "kept" {
		t.Errorf("kept bytes changed: %q", first)
	}
	large := b.Scratch(scratchChunk + 1)
	if cap(large) != scratchChunk+1 {
		t.Errorf("room for %d bytes has capacity %d", scratchChunk+1, cap(large))
	}
	large = append(large, make([]byte, scratchChunk+1)...)
	b.Keep(len(large))
	if next := b.Scratch(100); &next[:1][0] == &large[:1][0] {
		t.Error("a large message's kept bytes lent again")
	}
	b.Reset()
	if again := b.Scratch(100); &again[:1][0] != &first[:1][0] {
		t.Error("a Reset batch did not lend its memory again")
	}
	for _, c := range b.scratch {
		if len(c) > scratchChunk {
			t.Error("the chunk of a large message outlived Reset")
		}
	}
}
