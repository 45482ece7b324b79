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
