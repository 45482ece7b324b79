package otlpwire

import (
	"bytes"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/spanflow/spanflow/internal/spangen"
	"github.com/spanflow/spanflow/internal/tracetest"
)

// assertLikePData holds AppendValidated to pdata's reading of an export request, as OTLP
// receivers read the bytes the writer sends: the same bytes accepted and refused, and what
// it adds decodes to exactly what pdata decodes from the input.
func assertLikePData(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := decodeRequest(data)
	var b Batch
	b.AppendRequest([]byte{}, 0)
	spans, err := b.AppendValidated(data)
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
	if w, g := jsonOf(t, want), jsonOf(t, got); !bytes.Equal(w, g) {
		t.Fatalf("the batch decodes to\n%s\nthe input to\n%s", g, w)
	}
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
	var b Batch
	good := marshal(t, tracetest.Corpus())
	if _, err := b.AppendValidated(good); err != nil {
		t.Fatal(err)
	}
	before := b.Request().AppendTo(nil)
	// Good resource spans first, then a broken one: nothing of this request may stay.
	if _, err := b.AppendValidated(cat(good, wrap(field(1, protowire.BytesType, make([]byte, 3))))); err == nil {
		t.Fatal("a request with a 3-byte trace ID was accepted")
	}
	if !bytes.Equal(b.Request().AppendTo(nil), before) || b.Spans() != tracetest.Corpus().SpanCount() {
		t.Fatalf("a refused request changed the batch: %d spans", b.Spans())
	}
}

// TestAppendValidatedRefersToTheMessage: the batch sends a message's ResourceSpans where
// they are, in one piece for each run of them between fields it drops, and lets go of the
// message on Reset.
func TestAppendValidatedRefersToTheMessage(t *testing.T) {
	first, second := marshal(t, richTraces()), marshal(t, tracetest.Corpus())
	unknown := func(num protowire.Number) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), 7)
	}
	msg := cat(unknown(99), first, second, unknown(98), first)
	var b Batch
	if _, err := b.AppendValidated(msg); err != nil {
		t.Fatal(err)
	}
	pieces := b.Request().Pieces
	at := []int{len(unknown(99)), len(unknown(99)) + len(first) + len(second) + len(unknown(98))}
	lengths := []int{len(first) + len(second), len(first)}
	if len(pieces) != 2 {
		t.Fatalf("%d pieces, want 2 (the unknown fields dropped)", len(pieces))
	}
	for i, p := range pieces {
		if len(p) != lengths[i] || &p[0] != &msg[at[i]] {
			t.Fatalf("piece %d is %d bytes, not the message's %d at byte %d", i, len(p), lengths[i], at[i])
		}
	}
	b.Reset()
	for i, p := range b.whole[:cap(b.whole)] {
		if p != nil {
			t.Fatalf("after Reset the batch still refers to piece %d", i)
		}
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
	slot, known := k.lookup(good)
	if known {
		t.Fatal("an empty cache knows a resource")
	}
	remember(slot, good)
	if _, known := k.lookup(good); !known {
		t.Error("a resource remembered is not known")
	}
	badSlot, _ := k.lookup(bad)
	remember(badSlot, good) // as if the two shared a slot
	if _, known := k.lookup(bad); known {
		t.Error("a resource is known by a resource of its length in its slot")
	}
	large := field(ResourceAttributes, protowire.BytesType, make([]byte, knownResourceMaxBytes))
	slot, _ = k.lookup(large)
	remember(slot, large)
	if _, known := k.lookup(large); known {
		t.Errorf("a resource of %d bytes was kept (at most %d)", len(large), knownResourceMaxBytes)
	}
}

func FuzzAppendValidated(f *testing.F) {
	for _, data := range wireCases(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) { assertLikePData(t, data) })
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
