package otlpwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/spanflow/spanflow/internal/spangen"
	"github.com/spanflow/spanflow/internal/tracetest"
)

// assertLikePData holds AppendValidated to pdata's reading of an export request, as OTLP
// receivers read the bytes the writer sends: the same bytes accepted and refused, and what
// it adds decodes to exactly what pdata decodes from the input, up to the resource spans
// of one resource merged.
func assertLikePData(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := decodeRequest(data)
	var b Batch
	b.AppendRequest([]byte{}, 0)
	spans, err := b.AppendValidated(data)
	if errors.Is(err, ErrForeignFields) && wantErr == nil && want.SpanCount() == 0 {
		wantErr = err // the one difference: bytes of no span and foreign fields are not a request
	}
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("AppendValidated error %v, pdata error %v, for % x", err, wantErr, data)
	}
	if err != nil {
		if b.Spans() != 0 || b.Request().Len() != 0 {
			t.Fatalf("a refused request left %d spans and %d bytes in the batch", b.Spans(), b.Request().Len())
		}
		return
	}
	if spans != want.SpanCount() || b.Spans() != spans {
		t.Fatalf("counted %d spans (batch %d), pdata decodes %d", spans, b.Spans(), want.SpanCount())
	}
	got, err := b.Request().Traces()
	if err != nil {
		t.Fatalf("pdata cannot decode what the batch holds: %v", err)
	}
	if w, g := jsonOf(t, byResource(t, want)), jsonOf(t, byResource(t, got)); !bytes.Equal(w, g) {
		t.Fatalf("the batch decodes to\n%s\nthe input to\n%s", g, w)
	}
}

// byResource merges the resource spans of td of the same resource and schema URL, in the
// order each first appears, their scope spans in the order they come: what a batch may do,
// so that the two readings compare whatever the batch merged.
func byResource(t testing.TB, td ptrace.Traces) ptrace.Traces {
	t.Helper()
	out := ptrace.NewTraces()
	merged := map[string]ptrace.ResourceSpans{}
	for i := range td.ResourceSpans().Len() {
		rs := td.ResourceSpans().At(i)
		key := ptrace.NewTraces()
		kr := key.ResourceSpans().AppendEmpty()
		rs.Resource().CopyTo(kr.Resource())
		kr.SetSchemaUrl(rs.SchemaUrl())
		m, ok := merged[string(jsonOf(t, key))]
		if !ok {
			m = out.ResourceSpans().AppendEmpty()
			kr.CopyTo(m)
			merged[string(jsonOf(t, key))] = m
		}
		for j := range rs.ScopeSpans().Len() {
			rs.ScopeSpans().At(j).CopyTo(m.ScopeSpans().AppendEmpty())
		}
	}
	// Scope spans in no order: those of a resource sent apart (of a shape merging would
	// change) come after those merged where the resource first came.
	for i := range out.ResourceSpans().Len() {
		scopes := out.ResourceSpans().At(i).ScopeSpans()
		keys := map[ptrace.ScopeSpans]string{}
		for j := range scopes.Len() {
			one := ptrace.NewTraces()
			scopes.At(j).CopyTo(one.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty())
			keys[scopes.At(j)] = string(jsonOf(t, one))
		}
		scopes.Sort(func(a, b ptrace.ScopeSpans) bool { return keys[a] < keys[b] })
	}
	return out
}

func jsonOf(t testing.TB, td ptrace.Traces) []byte {
	t.Helper()
	data, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func marshal(t testing.TB, td ptrace.Traces) []byte {
	t.Helper()
	data, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// richTraces has a value of every kind, nested, events, links, a status, a scope with
// attributes, an entity reference and schema URLs.
func richTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.30.0")
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	rs.Resource().SetDroppedAttributesCount(2)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("io.opentelemetry.contrib")
	ss.Scope().SetVersion("1.2.3")
	ss.Scope().Attributes().PutBool("scope.flag", true)
	span := ss.Spans().AppendEmpty()
	span.SetTraceID(tracetest.CheckoutTrace)
	span.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	span.SetParentSpanID(pcommon.SpanID{8, 7, 6, 5, 4, 3, 2, 1})
	span.TraceState().FromRaw("vendor=value")
	span.SetFlags(0x301)
	span.SetName("GET /")
	span.SetKind(ptrace.SpanKindServer)
	span.SetStartTimestamp(1_700_000_000_000_000_000)
	span.SetEndTimestamp(1_700_000_000_250_000_000)
	attrs := span.Attributes()
	attrs.PutStr("s", "x")
	attrs.PutInt("i", -7)
	attrs.PutDouble("d", 1.5)
	attrs.PutBool("b", true)
	attrs.PutEmptyBytes("bytes").FromRaw([]byte{0, 1, 2})
	arr := attrs.PutEmptySlice("arr")
	arr.AppendEmpty().SetStr("a")
	arr.AppendEmpty().SetEmptyMap().PutInt("deep", 1)
	attrs.PutEmptyMap("map").PutEmptySlice("inner").AppendEmpty().SetBool(false)
	attrs.PutEmpty("empty")
	span.SetDroppedAttributesCount(3)
	ev := span.Events().AppendEmpty()
	ev.SetName("retry")
	ev.SetTimestamp(1_700_000_000_100_000_000)
	ev.Attributes().PutInt("attempt", 2)
	ev.SetDroppedAttributesCount(1)
	span.SetDroppedEventsCount(4)
	link := span.Links().AppendEmpty()
	link.SetTraceID(tracetest.BatchTrace)
	link.SetSpanID(pcommon.SpanID{9, 9, 9, 9, 9, 9, 9, 9})
	link.TraceState().FromRaw("a=b")
	link.SetFlags(1)
	link.Attributes().PutStr("opentracing.ref_type", "follows_from")
	span.SetDroppedLinksCount(5)
	span.Status().SetCode(ptrace.StatusCodeError)
	span.Status().SetMessage("boom")
	ss.Spans().AppendEmpty().SetName("second")
	td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty() // a resource with no spans
	return td
}

// field encodes one field.
func field(num protowire.Number, typ protowire.Type, body []byte) []byte {
	b := protowire.AppendTag(nil, num, typ)
	if typ == protowire.BytesType {
		return protowire.AppendBytes(b, body)
	}
	return append(b, body...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// wrap encodes span (a Span message) in a request with one resource and one scope.
func wrap(span []byte) []byte {
	return field(1, protowire.BytesType, field(2, protowire.BytesType, field(2, protowire.BytesType, span)))
}

// nested returns an AnyValue nested n arrays deep.
func nested(n int) []byte {
	v := field(anyString, protowire.BytesType, []byte("leaf"))
	for range n {
		v = field(anyArray, protowire.BytesType, field(listValues, protowire.BytesType, v))
	}
	return v
}

// nestedKvlist returns an AnyValue nested n key-value lists deep, each a plain KeyValue:
// three levels of pdata's depth each.
func nestedKvlist(n int) []byte {
	v := field(anyString, protowire.BytesType, []byte("leaf"))
	for range n {
		kv := cat(field(keyValueKey, protowire.BytesType, []byte("k")), field(keyValueValue, protowire.BytesType, v))
		v = field(anyKvlist, protowire.BytesType, field(listValues, protowire.BytesType, kv))
	}
	return v
}

func wireCases(t testing.TB) map[string][]byte {
	rich := marshal(t, richTraces())
	span := marshal(t, tracetest.Corpus())
	kv := func(value []byte) []byte {
		return wrap(field(9, protowire.BytesType, cat(field(1, protowire.BytesType, []byte("k")), field(2, protowire.BytesType, value))))
	}
	return map[string][]byte{
		"rich":   rich,
		"corpus": span,
		"both":   cat(rich, span),
		"empty":  {},
		"deprecated scope spans only": field(1, protowire.BytesType,
			field(1000, protowire.BytesType, field(2, protowire.BytesType, field(5, protowire.BytesType, []byte("old"))))),
		"deprecated beside scope spans": field(1, protowire.BytesType, cat(
			field(2, protowire.BytesType, field(2, protowire.BytesType, nil)),
			field(1000, protowire.BytesType, field(2, protowire.BytesType, nil)))),
		"unknown fields and groups": cat(field(7, protowire.VarintType, []byte{1}), wrap(cat(
			field(99, protowire.Fixed32Type, []byte{1, 2, 3, 4}),
			field(98, protowire.StartGroupType, nil), field(3, protowire.Fixed64Type, make([]byte, 8)), field(98, protowire.EndGroupType, nil)))),
		"trace ID of 15 bytes":      wrap(field(1, protowire.BytesType, make([]byte, 15))),
		"empty trace ID":            wrap(field(1, protowire.BytesType, nil)),
		"span ID of 9 bytes":        wrap(field(2, protowire.BytesType, make([]byte, 9))),
		"link span ID of 7 bytes":   wrap(field(13, protowire.BytesType, field(2, protowire.BytesType, make([]byte, 7)))),
		"name as a varint":          wrap(field(5, protowire.VarintType, []byte{1})),
		"flags as a varint":         wrap(field(16, protowire.VarintType, []byte{1})),
		"start as fixed32":          wrap(field(7, protowire.Fixed32Type, []byte{1, 2, 3, 4})),
		"truncated start":           wrap(field(7, protowire.Fixed64Type, []byte{1, 2, 3})),
		"resource spans as varint":  field(1, protowire.VarintType, []byte{1}),
		"truncated length":          {0x0a, 0x05, 0x12},
		"end group alone":           wrap(field(20, protowire.EndGroupType, nil)),
		"field number zero":         {0x02, 0x00},
		"wire type 7":               wrap([]byte{0x0f}),
		"varint of 11 bytes":        wrap(append([]byte{0x50}, bytes.Repeat([]byte{0xff}, 11)...)),
		"status code as bytes":      wrap(field(15, protowire.BytesType, field(3, protowire.BytesType, nil))),
		"double as varint":          kv(field(anyDouble, protowire.VarintType, []byte{1})),
		"value nested 97 deep":      kv(nested(97)),
		"value nested 98 deep":      kv(nested(98)),
		"value nested 99 deep":      kv(nested(99)),
		"kvlists nested 32 deep":    kv(nestedKvlist(32)),
		"kvlists nested 33 deep":    kv(nestedKvlist(33)),
		"kvlists nested 34 deep":    kv(nestedKvlist(34)),
		"key value list in a value": kv(field(anyKvlist, protowire.BytesType, field(1, protowire.BytesType, field(2, protowire.BytesType, nested(3))))),
		"unknown value field":       kv(field(12, protowire.VarintType, []byte{3})),
		// The fields plainField takes without a walk, cut short.
		"trace ID cut short":   wrap(append([]byte{0x0a, 16}, make([]byte, 15)...)),
		"span ID cut short":    wrap(append([]byte{0x12, 8}, make([]byte, 7)...)),
		"kind cut short":       wrap([]byte{0x30, 0x80}),
		"kind of 10 bytes":     wrap(append([]byte{0x30}, append(bytes.Repeat([]byte{0x80}, 9), 0x01)...)),
		"name cut short":       wrap([]byte{0x2a, 5, 'a'}),
		"attribute cut short":  wrap([]byte{0x4a, 10, 0x0a, 1, 'k'}),
		"event time cut short": wrap(field(11, protowire.BytesType, []byte{0x09, 1, 2})),
		"two-byte name length": wrap(field(5, protowire.BytesType, bytes.Repeat([]byte("n"), 200))),
		"trace ID as fixed64":  wrap(field(1, protowire.Fixed64Type, make([]byte, 8))),
		"end time as varint":   wrap(field(8, protowire.VarintType, []byte{1})),
		// The shapes plainKeyValue takes without a walk, and their near misses.
		"value before key": wrap(field(9, protowire.BytesType, cat(field(2, protowire.BytesType, field(anyString, protowire.BytesType, []byte("v"))),
			field(1, protowire.BytesType, []byte("k"))))),
		"key only":                  wrap(field(9, protowire.BytesType, field(1, protowire.BytesType, []byte("k")))),
		"value only":                wrap(field(9, protowire.BytesType, field(2, protowire.BytesType, field(anyInt, protowire.VarintType, []byte{5})))),
		"key twice":                 wrap(field(9, protowire.BytesType, cat(field(1, protowire.BytesType, []byte("a")), field(1, protowire.BytesType, []byte("b"))))),
		"long string value":         kv(field(anyString, protowire.BytesType, bytes.Repeat([]byte("x"), 300))),
		"20 KB string value":        kv(field(anyString, protowire.BytesType, bytes.Repeat([]byte("x"), 20000))),
		"int of 9 bytes":            kv(field(anyInt, protowire.VarintType, append(bytes.Repeat([]byte{0xff}, 8), 0x7f))),
		"int of 10 bytes":           kv(field(anyInt, protowire.VarintType, append(bytes.Repeat([]byte{0xff}, 9), 0x01))),
		"int overflowing":           kv(field(anyInt, protowire.VarintType, append(bytes.Repeat([]byte{0xff}, 9), 0x7f))),
		"bool then string":          kv(cat(field(anyBool, protowire.VarintType, []byte{1}), field(anyString, protowire.BytesType, []byte("s")))),
		"double of 7 bytes":         kv(append([]byte{anyDouble<<3 | byte(protowire.Fixed64Type)}, make([]byte, 7)...)),
		"string cut short":          kv([]byte{anyString<<3 | byte(protowire.BytesType), 5, 'a'}),
		"empty value":               kv(nil),
		"strindex value":            kv(field(anyStrindex, protowire.VarintType, []byte{3})),
		"entity ref":                field(1, protowire.BytesType, field(1, protowire.BytesType, field(3, protowire.BytesType, field(2, protowire.BytesType, []byte("host"))))),
		"entity ref type as varint": field(1, protowire.BytesType, field(1, protowire.BytesType, field(3, protowire.BytesType, field(2, protowire.VarintType, []byte{1})))),
		"invalid UTF-8 name":        wrap(field(5, protowire.BytesType, []byte{0xff, 0xfe})),
		// Runs of attributes, which plainField takes in one go, and where they stop.
		"a run of plain attributes": wrap(cat(plainKV("a"), plainKV("b"), plainKV("c"))),
		"a run, one nested in it": wrap(cat(plainKV("a"), field(9, protowire.BytesType, cat(field(1, protowire.BytesType, []byte("n")),
			field(2, protowire.BytesType, nested(2)))), plainKV("c"))),
		"a run, one malformed in it": wrap(cat(plainKV("a"), field(9, protowire.BytesType, cat(field(1, protowire.BytesType, []byte("d")),
			field(2, protowire.BytesType, field(anyDouble, protowire.VarintType, []byte{1})))), plainKV("c"))),
		"a run, the last cut short":             wrap(cat(plainKV("a"), plainKV("b"), []byte{0x4a, 10, 0x0a, 1, 'k'})),
		"a run, the last a varint":              wrap(cat(plainKV("a"), field(9, protowire.VarintType, []byte{1}))),
		"two runs, a field between":             wrap(cat(plainKV("a"), field(10, protowire.VarintType, []byte{2}), plainKV("b"))),
		"after a run, a trace ID shaped as one": wrap(cat(plainKV("a"), field(1, protowire.BytesType, plainKVBody("x")))),
		"a run of event attributes":             wrap(field(11, protowire.BytesType, cat(field(3, protowire.BytesType, plainKVBody("e")), field(3, protowire.BytesType, plainKVBody("f"))))),
		"a run of event attributes, short":      wrap(field(11, protowire.BytesType, cat(field(3, protowire.BytesType, plainKVBody("e")), []byte{0x1a, 9, 0x0a}))),
	}
}

// plainKVBody is a KeyValue of the shape producers write: a key and a string value.
func plainKVBody(key string) []byte {
	return cat(field(1, protowire.BytesType, []byte(key)), field(2, protowire.BytesType, field(anyString, protowire.BytesType, []byte("v"))))
}

// plainKV is a span attribute (field 9) holding plainKVBody.
func plainKV(key string) []byte { return field(9, protowire.BytesType, plainKVBody(key)) }

func TestAppendValidatedIsPData(t *testing.T) {
	for name, data := range wireCases(t) {
		t.Run(name, func(t *testing.T) { assertLikePData(t, data) })
	}
}

func TestAppendValidatedKeepsWhatCameBefore(t *testing.T) {
	good := marshal(t, tracetest.Corpus())
	var alone Batch
	if _, err := alone.AppendValidated(good); err != nil {
		t.Fatal(err)
	}
	want := alone.Request().AppendTo(nil)
	var b Batch
	if _, err := b.AppendValidated(good); err != nil {
		t.Fatal(err)
	}
	// Good resource spans first — merged with those before — then a broken one: nothing
	// of this request may stay.
	if _, err := b.AppendValidated(cat(good, wrap(field(1, protowire.BytesType, make([]byte, 3))))); err == nil {
		t.Fatal("a request with a 3-byte trace ID was accepted")
	}
	if !bytes.Equal(b.Request().AppendTo(nil), want) || b.Spans() != tracetest.Corpus().SpanCount() {
		t.Fatalf("a refused request changed the batch: %d spans", b.Spans())
	}
	// And what comes after it merges as before: also a resource whose first resource
	// spans were refused, after another took its place in the batch.
	broken := wrap(field(1, protowire.BytesType, make([]byte, 3)))
	of := func(service string) []byte {
		return field(requestResourceSpans, protowire.BytesType, cat(field(resourceSpansResource, protowire.BytesType, resourceOf(service)),
			field(resourceSpansScopeSpans, protowire.BytesType, field(scopeSpansSpans, protowire.BytesType, field(SpanName, protowire.BytesType, []byte(service))))))
	}
	assertMessagesLikePData(t, good, cat(good, broken), good, cat(of("y"), broken), of("z"), of("y"), good)

	// Nor does a refused message stay behind the batch's slices after Reset: neither its
	// resource spans sent as they came nor those merged into what came before.
	var c Batch
	if _, err := c.AppendValidated(of("a")); err != nil {
		t.Fatal(err)
	}
	asTheyCame := field(requestResourceSpans, protowire.BytesType, cat(field(resourceSpansResource, protowire.BytesType, resourceOf("b")),
		field(resourceSpansScopeSpans, protowire.BytesType, nil), field(70, protowire.VarintType, []byte{1})))
	if _, err := c.AppendValidated(cat(of("a"), asTheyCame, broken)); err == nil {
		t.Fatal("a request with a 3-byte trace ID was accepted")
	}
	c.Reset()
	for i, e := range c.entries[:cap(c.entries)] {
		if e.piece != nil {
			t.Errorf("after Reset the batch still refers to entry %d: % x", i, e.piece)
		}
	}
	for i, m := range c.merged[:cap(c.merged)] {
		for j, scopes := range m.scopes[:cap(m.scopes)] {
			if scopes != nil {
				t.Errorf("after Reset merged entry %d still refers to scope spans %d: % x", i, j, scopes)
			}
		}
	}
}

// TestAppendValidatedForgetsAnEvictedResource: three resources of one set of the resource
// cache, in turn in one batch — the third takes the first one's slot, which must no longer
// name the first one's merged entry (its spans would go under another resource), and the
// first, back, finds its entry by its hash.
func TestAppendValidatedForgetsAnEvictedResource(t *testing.T) {
	bySet := map[uint64][]string{}
	var same []string
	for i := 0; len(same) < 3; i++ {
		service := fmt.Sprintf("service-%d", i)
		set := maphash.Bytes(knownResourceSeed, resourceOf(service)) % knownResourceSets
		bySet[set] = append(bySet[set], service)
		same = bySet[set]
	}
	of := func(service, span string) []byte {
		return field(requestResourceSpans, protowire.BytesType, cat(field(resourceSpansResource, protowire.BytesType, resourceOf(service)),
			field(resourceSpansScopeSpans, protowire.BytesType, field(scopeSpansSpans, protowire.BytesType, field(SpanName, protowire.BytesType, []byte(span))))))
	}
	messages := [][]byte{of(same[0], "1"), of(same[1], "2"), of(same[2], "3"), of(same[0], "4"), of(same[1], "5"), of(same[2], "6")}
	assertMessagesLikePData(t, messages...)
	// And each finds its merged entry again: three resource spans, not one a return.
	var b Batch
	for _, m := range messages {
		if _, err := b.AppendValidated(m); err != nil {
			t.Fatal(err)
		}
	}
	if td, err := b.Request().Traces(); err != nil || td.ResourceSpans().Len() != 3 {
		t.Fatalf("%d resource spans (%v) for 3 resources of one set", td.ResourceSpans().Len(), err)
	}
}

// TestAppendValidatedRefersToTheMessage: the batch sends a message's ResourceSpans where
// they are — in one piece for each run of them it sends as they came, and those it merges
// in pieces of their fields — and lets go of the message on Reset.
func TestAppendValidatedRefersToTheMessage(t *testing.T) {
	unknown := func(num protowire.Number) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), 7)
	}
	// Resource spans with a field pdata drops are sent as they came.
	asTheyCame := func(service string) []byte {
		return field(requestResourceSpans, protowire.BytesType, cat(field(resourceSpansResource, protowire.BytesType, resourceOf(service)),
			field(resourceSpansScopeSpans, protowire.BytesType, field(scopeSpansSpans, protowire.BytesType, field(SpanName, protowire.BytesType, []byte("op")))),
			unknown(50)))
	}
	first, second := cat(asTheyCame("a"), asTheyCame("b")), asTheyCame("c")
	msg := cat(unknown(99), first, unknown(98), second, marshal(t, tracetest.Corpus()), marshal(t, richTraces()))
	var b Batch
	if _, err := b.AppendValidated(msg); err != nil {
		t.Fatal(err)
	}
	pieces := b.Request().Pieces
	for i, want := range [][]byte{first, second} {
		if !bytes.Equal(pieces[i], want) || !inside(pieces[i], msg) {
			t.Fatalf("piece %d is % x, not the message's run % x", i, pieces[i], want)
		}
	}
	// Past the runs, every piece is in the message but the tags and lengths of the merged
	// resource spans (a few bytes each).
	for i, p := range pieces[2:] {
		if !inside(p, msg) && len(p) > 1+binary.MaxVarintLen64 {
			t.Errorf("piece %d of %d bytes is not in the message", i+2, len(p))
		}
	}
	b.Reset()
	for i, e := range b.entries[:cap(b.entries)] {
		if e.piece != nil {
			t.Fatalf("after Reset the batch still refers to entry %d", i)
		}
	}
	if p := b.parts; p.resource != nil || p.scopes != nil || p.schema != nil || p.slot != nil || b.known != nil {
		t.Fatal("after Reset the batch still refers to the last resource spans walked, or to its resource cache")
	}
	for i, m := range b.merged[:cap(b.merged)] {
		if m.resource != nil || m.schema != nil || slices.ContainsFunc(m.scopes[:cap(m.scopes)], func(s []byte) bool { return s != nil }) {
			t.Fatalf("after Reset the batch still refers to merged entry %d", i)
		}
	}
}

// inside reports whether p is a part of msg's bytes.
func inside(p, msg []byte) bool {
	return len(p) > 0 && len(msg) > 0 && uintptr(unsafe.Pointer(&p[0])) >= uintptr(unsafe.Pointer(&msg[0])) &&
		uintptr(unsafe.Pointer(&p[len(p)-1])) <= uintptr(unsafe.Pointer(&msg[len(msg)-1]))
}

// resourceOf encodes a Resource of one attribute, service.name.
func resourceOf(service string) []byte {
	kv := cat(field(KeyValueKey, protowire.BytesType, []byte("service.name")),
		field(KeyValueValue, protowire.BytesType, field(ValueString, protowire.BytesType, []byte(service))))
	return field(ResourceAttributes, protowire.BytesType, kv)
}

// TestAppendValidatedMergesResources: the resource spans of one resource and schema URL,
// from one message or many, are sent as one, in the place the first came; those of other
// resources, of another schema URL, or of a shape merging would change (a field pdata
// drops, the deprecated instrumentation_library_spans, a resource repeated) are not.
func TestAppendValidatedMergesResources(t *testing.T) {
	span := func(name string) []byte {
		return field(resourceSpansScopeSpans, protowire.BytesType, field(scopeSpansSpans, protowire.BytesType, field(SpanName, protowire.BytesType, []byte(name))))
	}
	rs := func(parts ...[]byte) []byte { return field(requestResourceSpans, protowire.BytesType, cat(parts...)) }
	res := func(service string) []byte {
		return field(resourceSpansResource, protowire.BytesType, resourceOf(service))
	}
	schema := func(url string) []byte { return field(resourceSpansSchemaURL, protowire.BytesType, []byte(url)) }
	legacy := field(resourceSpansDeprecatedScopeSpans, protowire.BytesType, nil)
	messages := [][]byte{
		cat(rs(res("a"), span("a1")), rs(res("b"), span("b1"))),
		cat(rs(res("a"), span("a2"), span("a3")), rs(schema("s2"), res("a"), span("a/s2"))),
		rs(res("b"), span("b2")),
		cat(rs(res("a"), span("a4"), field(60, protowire.VarintType, []byte{1})), rs(res("a"), span("a5"), legacy),
			rs(res("a"), res("a"), span("a6")), rs(span("a7"), res("a"), span("a8"))),
		rs(span("a9"), res("a")),
	}
	var b Batch
	for round := range 2 {
		b.Reset()
		var want ptrace.Traces
		for _, m := range messages {
			if _, err := b.AppendValidated(m); err != nil {
				t.Fatal(err)
			}
			td, err := decodeRequest(m)
			if err != nil {
				t.Fatal(err)
			}
			if want == (ptrace.Traces{}) {
				want = td
			} else {
				td.ResourceSpans().MoveAndAppendTo(want.ResourceSpans())
			}
		}
		got, err := b.Request().Traces()
		if err != nil {
			t.Fatal(err)
		}
		if jsonOf(t, byResource(t, got)) == nil || !bytes.Equal(jsonOf(t, byResource(t, got)), jsonOf(t, byResource(t, want))) {
			t.Fatalf("round %d: the batch decodes to\n%s\nthe messages to\n%s", round, jsonOf(t, got), jsonOf(t, want))
		}
		var names []string
		for i := range got.ResourceSpans().Len() {
			var spans []string
			for j := range got.ResourceSpans().At(i).ScopeSpans().Len() {
				ss := got.ResourceSpans().At(i).ScopeSpans().At(j)
				for k := range ss.Spans().Len() {
					spans = append(spans, ss.Spans().At(k).Name())
				}
			}
			names = append(names, strings.Join(spans, " "))
		}
		// a (merged, where it first came), b (merged), a of schema s2, then those sent as
		// they came: with a field pdata drops, beside the deprecated field, with its
		// resource twice, its scope spans apart (the resource between them); and a9, whose
		// resource came last, merged.
		wantNames := []string{"a1 a2 a3 a9", "b1 b2", "a/s2", "a4", "a5", "a6", "a7 a8"}
		if !slices.Equal(names, wantNames) {
			t.Fatalf("round %d: resource spans of %q, want %q", round, names, wantNames)
		}
	}
}

// TestLegacyScopeSpansAreSentAsScopeSpans: spans in the deprecated
// instrumentation_library_spans alone (producers on OTLP before 0.15) are sent as
// scope_spans, as pdata reads them: a receiver on today's opentelemetry-proto skips field
// 1000 as unknown, and would drop them. Such a ResourceSpans merges with others of its
// resource, or, of a shape that does not merge, is sent apart; beside scope_spans the
// deprecated field is pdata's to drop, and is sent as it came.
func TestLegacyScopeSpansAreSentAsScopeSpans(t *testing.T) {
	scopeSpans := func(num protowire.Number, names ...string) []byte {
		var spans [][]byte
		for _, n := range names {
			spans = append(spans, field(scopeSpansSpans, protowire.BytesType, field(SpanName, protowire.BytesType, []byte(n))))
		}
		scope := field(scopeSpansScope, protowire.BytesType, field(1, protowire.BytesType, []byte("lib")))
		return field(num, protowire.BytesType, cat(append([][]byte{scope}, spans...)...))
	}
	rs := func(parts ...[]byte) []byte { return field(requestResourceSpans, protowire.BytesType, cat(parts...)) }
	res := field(resourceSpansResource, protowire.BytesType, resourceOf("old"))
	const legacy, current = resourceSpansDeprecatedScopeSpans, resourceSpansScopeSpans
	messages := [][]byte{
		rs(res, scopeSpans(current, "now")),
		rs(res, scopeSpans(legacy, "old1", "old2"), scopeSpans(legacy, "old3")),        // merges with the first
		rs(res, scopeSpans(legacy, "odd"), field(60, protowire.VarintType, []byte{1})), // a field pdata drops: apart
		rs(res, scopeSpans(current, "beside"), scopeSpans(legacy, "dropped")),
	}
	var b Batch
	want := ptrace.NewTraces()
	for _, m := range messages {
		n, err := b.AppendValidated(m)
		if err != nil {
			t.Fatal(err)
		}
		td, err := decodeRequest(m)
		if err != nil {
			t.Fatal(err)
		}
		if n != td.SpanCount() {
			t.Errorf("%d spans counted, pdata reads %d", n, td.SpanCount())
		}
		td.ResourceSpans().MoveAndAppendTo(want.ResourceSpans())
	}
	req := b.Request()
	sent := req.AppendTo(nil)
	got, err := decodeRequest(sent)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(jsonOf(t, byResource(t, got)), jsonOf(t, byResource(t, want))) {
		t.Fatalf("the batch decodes to\n%s\nthe messages to\n%s", jsonOf(t, got), jsonOf(t, want))
	}
	// What a reader that knows only scope_spans finds: every span pdata reads, in the
	// order of the resource spans sent.
	var names []string
	for pos := 0; pos < len(sent); {
		_, _, n := protowire.ConsumeField(sent[pos:])
		_, _, body := consumeField(t, sent[pos:pos+n])
		for rpos := 0; rpos < len(body); {
			num, _, m := protowire.ConsumeField(body[rpos:])
			if num == current {
				_, _, scope := consumeField(t, body[rpos:rpos+m])
				for spos := 0; spos < len(scope); {
					snum, _, k := protowire.ConsumeField(scope[spos:])
					if snum == scopeSpansSpans {
						_, _, span := consumeField(t, scope[spos:spos+k])
						_, _, name := consumeField(t, span)
						names = append(names, string(name))
					}
					spos += k
				}
			}
			rpos += m
		}
		pos += n
	}
	if wantNames := []string{"now", "old1", "old2", "old3", "odd", "beside"}; !slices.Equal(names, wantNames) {
		t.Errorf("a reader of scope_spans alone finds spans %q, want %q", names, wantNames)
	}
}

// consumeField reads one length-delimited field.
func consumeField(t *testing.T, b []byte) (protowire.Number, protowire.Type, []byte) {
	t.Helper()
	num, typ, n := protowire.ConsumeTag(b)
	body, m := protowire.ConsumeBytes(b[n:])
	if n < 0 || m < 0 || typ != protowire.BytesType {
		t.Fatalf("not a length-delimited field: %x", b)
	}
	return num, typ, body
}

// TestAppendValidatedMergesLessBytes: the peers benchmark's messages, one trace of 3–7
// spans each, make a request a quarter smaller merged, every span in it.
func TestAppendValidatedMergesLessBytes(t *testing.T) {
	gen := spangen.New(1)
	start := time.Unix(1_780_000_000, 0)
	var b Batch
	sent, spans := 0, 0
	for i := range 200 {
		td, _, err := gen.OTLPTrace(uint64(i), start.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		msg := marshal(t, td)
		if _, err := b.AppendValidated(msg); err != nil {
			t.Fatal(err)
		}
		sent, spans = sent+len(msg), spans+td.SpanCount()
	}
	req := b.Request()
	got, err := req.Traces()
	if err != nil {
		t.Fatal(err)
	}
	if got.SpanCount() != spans || req.Spans != spans || len(tracetest.Views(got)) != spans {
		t.Fatalf("%d spans (%d distinct) in the request, the batch counts %d, the messages hold %d", got.SpanCount(), len(tracetest.Views(got)), req.Spans, spans)
	}
	if ratio := float64(req.Len()) / float64(sent); ratio > 0.8 || got.ResourceSpans().Len() > 60 {
		t.Fatalf("merged, the request is %.2f of the messages' bytes, in %d resource spans", ratio, got.ResourceSpans().Len())
	}
}

// TestKnownResourcesAreKnownByTheirBytes: a resource walked once is not walked again, but
// only the same bytes are the same resource — one of the same length and a wrong wire type
// is refused after the good one was accepted, by a batch and by the cache itself.
func TestKnownResourcesAreKnownByTheirBytes(t *testing.T) {
	resource := func(valueTag byte) []byte {
		kv := cat(field(KeyValueKey, protowire.BytesType, []byte("service.name")),
			field(KeyValueValue, protowire.BytesType, []byte{valueTag, 1, 'a'}))
		return field(ResourceAttributes, protowire.BytesType, kv)
	}
	good, bad := resource(0x0a), resource(0x08) // string_value as bytes; as a varint
	message := func(resource []byte) []byte {
		span := cat(field(SpanTraceID, protowire.BytesType, make([]byte, 16)), field(SpanName, protowire.BytesType, []byte("op")))
		return field(requestResourceSpans, protowire.BytesType, cat(field(resourceSpansResource, protowire.BytesType, resource),
			field(resourceSpansScopeSpans, protowire.BytesType, field(scopeSpansSpans, protowire.BytesType, span))))
	}
	var b Batch
	for range 3 {
		if _, err := b.AppendValidated(message(good)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.AppendValidated(message(bad)); err == nil {
			t.Fatal("a resource with a string value encoded as a varint was accepted after a good one of its length")
		}
		assertLikePData(t, message(bad))
	}
	var k knownResources
	slot, known, _ := k.lookup(good)
	if known {
		t.Fatal("an empty cache knows a resource")
	}
	remember(slot, good)
	if _, known, _ := k.lookup(good); !known {
		t.Error("a resource remembered is not known")
	}
	badSlot, _, _ := k.lookup(bad)
	remember(badSlot, good) // as if the two shared a slot
	if _, known, _ := k.lookup(bad); known {
		t.Error("a resource is known by a resource of its length in its slot")
	}
	large := field(ResourceAttributes, protowire.BytesType, make([]byte, knownResourceMaxBytes))
	slot, _, _ = k.lookup(large)
	remember(slot, large)
	if _, known, _ := k.lookup(large); known {
		t.Errorf("a resource of %d bytes was kept (at most %d)", len(large), knownResourceMaxBytes)
	}
}

func FuzzAppendValidated(f *testing.F) {
	for _, data := range wireCases(f) {
		f.Add(data)
	}
	corpus := marshal(f, tracetest.Corpus())
	f.Fuzz(func(t *testing.T, data []byte) {
		assertLikePData(t, data)
		// After messages of the same resources, and twice, to merge with them — or to be
		// refused after merging some of its resource spans, leaving the batch as it was.
		assertMessagesLikePData(t, corpus, data, data)
	})
}

// assertMessagesLikePData adds messages to one batch: those pdata refuses must be refused
// and leave the batch as it was, and the batch must decode to what pdata decodes from the
// others, up to the resource spans of one resource merged.
func assertMessagesLikePData(t *testing.T, messages ...[]byte) {
	t.Helper()
	var b Batch
	want := ptrace.NewTraces()
	for _, m := range messages {
		td, wantErr := decodeRequest(m)
		spans := b.Spans() // not Request: it would end the merging with what came before
		_, err := b.AppendValidated(m)
		if errors.Is(err, ErrForeignFields) && wantErr == nil && td.SpanCount() == 0 {
			wantErr = err // the one difference (assertLikePData)
		}
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("AppendValidated error %v, pdata error %v, for % x", err, wantErr, m)
		} else if err != nil {
			if b.Spans() != spans {
				t.Fatalf("a refused message changed the batch's spans from %d to %d", spans, b.Spans())
			}
			continue
		}
		td.ResourceSpans().MoveAndAppendTo(want.ResourceSpans())
	}
	got, err := b.Request().Traces()
	if err != nil {
		t.Fatalf("pdata cannot decode what the batch holds: %v", err)
	}
	if b.Spans() != want.SpanCount() || got.SpanCount() != want.SpanCount() {
		t.Fatalf("the batch counts %d spans and holds %d, pdata decodes %d", b.Spans(), got.SpanCount(), want.SpanCount())
	}
	if w, g := jsonOf(t, byResource(t, want)), jsonOf(t, byResource(t, got)); !bytes.Equal(w, g) {
		t.Fatalf("the batch decodes to\n%s\nthe messages to\n%s", g, w)
	}
}

func BenchmarkAppendValidated(b *testing.B) {
	data := marshal(b, tracetest.Corpus())
	spans := tracetest.Corpus().SpanCount()
	var batch Batch
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		batch.Reset()
		if _, err := batch.AppendValidated(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
}

// BenchmarkAppendValidatedRealistic walks the messages the peers benchmark reads: one
// trace of 3–7 realistic spans each, as the Collector's Kafka exporter writes them.
func BenchmarkAppendValidatedRealistic(b *testing.B) {
	gen := spangen.New(1)
	start := time.Unix(1_780_000_000, 0)
	var messages [][]byte
	spans, size := 0, 0
	for i := range 200 {
		td, _, err := gen.OTLPTrace(uint64(i), start.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		messages = append(messages, marshal(b, td))
		spans += td.SpanCount()
		size += len(messages[i])
	}
	var batch Batch
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		batch.Reset()
		for _, m := range messages {
			if _, err := batch.AppendValidated(m); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
}

// TestAJaegerSpanIsNotAnEmptyRequest: a Jaeger span whose trace ID happens to be a
// well-formed ResourceSpans (field 1 of both) reads in pdata as an empty request, its
// other fields skipped: refused, it is undecodable rather than committed past as empty.
// A request of resources without spans, and nothing else, stays one.
func TestAJaegerSpanIsNotAnEmptyRequest(t *testing.T) {
	span := cat(field(1, protowire.BytesType, bytes.Repeat([]byte{0x20, 0x01}, 8)), field(2, protowire.BytesType, []byte{1, 2, 3, 4, 5, 6, 7, 8}),
		field(4, protowire.BytesType, []byte("op")))
	var b Batch
	if _, err := b.AppendValidated(span); !errors.Is(err, ErrForeignFields) || b.Resources() != 0 {
		t.Errorf("a Jaeger span read as OTLP: %v, %d resources kept", err, b.Resources())
	}
	empty := field(1, protowire.BytesType, bytes.Repeat([]byte{0x20, 0x01}, 8))
	if n, err := b.AppendValidated(empty); err != nil || n != 0 || b.Resources() != 1 {
		t.Errorf("a request of a spanless resource: %d spans, %v", n, err)
	}
}
