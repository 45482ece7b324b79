package decode

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/gogo/protobuf/jsonpb"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/zipkincore"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/zipkin/zipkinv2"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/internal/spangen"
)

// twoServiceTrace is a trace of a client span in one service and its server child in another.
func twoServiceTrace() ptrace.Traces {
	td := ptrace.NewTraces()
	traceID := pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	for i, svc := range []string{"frontend", "checkout"} {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		span := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		span.SetTraceID(traceID)
		span.SetSpanID(pcommon.SpanID{byte(i + 1), 0, 0, 0, 0, 0, 0, 1})
		if i > 0 {
			span.SetParentSpanID(pcommon.SpanID{1, 0, 0, 0, 0, 0, 0, 1})
			span.SetKind(ptrace.SpanKindServer)
		} else {
			span.SetKind(ptrace.SpanKindClient)
		}
		span.SetName("post /checkout")
		span.SetStartTimestamp(1_780_000_000_000_000_000)
		span.SetEndTimestamp(1_780_000_000_250_000_000)
		span.Attributes().PutStr("http.method", "POST")
	}
	return td
}

// spanSet is the identity and parentage of every span, for comparing traces across formats.
func spanSet(td ptrace.Traces) map[string]string {
	out := map[string]string{}
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		svc, _ := rss.At(i).Resource().Attributes().Get("service.name")
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				s := spans.At(k)
				out[s.TraceID().String()+"/"+s.SpanID().String()] = svc.Str() + " parent=" + s.ParentSpanID().String() + " " + strings.ToLower(s.Name())
			}
		}
	}
	return out
}

func TestZipkinRoundTrips(t *testing.T) {
	want := spanSet(twoServiceTrace())
	jsonBytes, err := zipkinv2.NewJSONTracesMarshaler().MarshalTraces(twoServiceTrace())
	if err != nil {
		t.Fatal(err)
	}
	protoBytes, err := zipkinv2.NewProtobufTracesMarshaler().MarshalTraces(twoServiceTrace())
	if err != nil {
		t.Fatal(err)
	}
	for encoding, data := range map[string][]byte{config.EncodingZipkinJSON: jsonBytes, config.EncodingZipkinProto: protoBytes} {
		d, err := New(encoding)
		if err != nil {
			t.Fatal(err)
		}
		td, err := decodeOne(t, d, data)
		if err != nil {
			t.Fatalf("%s: %v", encoding, err)
		}
		got := spanSet(td)
		if len(got) != 2 {
			t.Fatalf("%s: %d spans, want every span of the message (2)", encoding, len(got))
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: span %s is %q, want %q", encoding, k, got[k], v)
			}
		}
	}
}

// zipkinThrift encodes spans as the Zipkin v1 Thrift list the Jaeger v1 ingester read.
func zipkinThrift(t *testing.T, spans ...*zipkincore.Span) []byte {
	t.Helper()
	ctx := context.Background()
	buf := thrift.NewTMemoryBuffer()
	proto := thrift.NewTBinaryProtocolConf(buf, &thrift.TConfiguration{})
	if err := proto.WriteListBegin(ctx, thrift.STRUCT, len(spans)); err != nil {
		t.Fatal(err)
	}
	for _, s := range spans {
		if err := s.Write(ctx, proto); err != nil {
			t.Fatal(err)
		}
	}
	if err := proto.WriteListEnd(ctx); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestZipkinThrift(t *testing.T) {
	ts, dur, parent := int64(1_780_000_000_000_000), int64(250_000), int64(1)
	endpoint := func(svc string) *zipkincore.Endpoint { return &zipkincore.Endpoint{ServiceName: svc, Ipv4: 0x0a000001} }
	data := zipkinThrift(t,
		&zipkincore.Span{TraceID: 42, ID: 1, Name: "get /cart", Timestamp: &ts, Duration: &dur,
			Annotations: []*zipkincore.Annotation{{Timestamp: ts, Value: "cs", Host: endpoint("frontend")}, {Timestamp: ts + dur, Value: "cr", Host: endpoint("frontend")}}},
		&zipkincore.Span{TraceID: 42, ID: 2, ParentID: &parent, Name: "get /cart", Timestamp: &ts, Duration: &dur,
			Annotations: []*zipkincore.Annotation{{Timestamp: ts, Value: "sr", Host: endpoint("cart")}, {Timestamp: ts + dur, Value: "ss", Host: endpoint("cart")}}},
	)
	d, err := New(config.EncodingZipkinThrift)
	if err != nil {
		t.Fatal(err)
	}
	td, err := decodeOne(t, d, data)
	if err != nil {
		t.Fatal(err)
	}
	got := spanSet(td)
	if len(got) != 2 {
		t.Fatalf("%d spans: %v", len(got), got)
	}
	joined := strings.Join(func() []string {
		var v []string
		for _, s := range got {
			v = append(v, s)
		}
		return v
	}(), ";")
	if !strings.Contains(joined, "frontend") || !strings.Contains(joined, "cart parent=0000000000000001") {
		t.Errorf("services or parents lost: %v", got)
	}
	if _, err := decodeOne(t, d, data[:len(data)-5]); err == nil {
		t.Error("a truncated Thrift list decoded")
	}
}

func TestJaegerJSON(t *testing.T) {
	span := spangen.New(5).JaegerSpan(7)
	var buf bytes.Buffer
	if err := (&jsonpb.Marshaler{}).Marshal(&buf, span); err != nil {
		t.Fatal(err)
	}
	protoBytes, _ := span.Marshal()
	fromJSON, err := jaegerJSON{}.traces(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	fromProto, err := jaegerProto{}.traces(protoBytes)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := (&ptrace.JSONMarshaler{}).MarshalTraces(fromJSON)
	b, _ := (&ptrace.JSONMarshaler{}).MarshalTraces(fromProto)
	if !bytes.Equal(a, b) {
		t.Errorf("jaeger_json and jaeger_proto of the same span differ:\n%s\n%s", a, b)
	}
	if _, err := (jaegerJSON{}).traces([]byte(`{"traceId": 12`)); err == nil {
		t.Error("invalid JSON decoded")
	}
}

// TestMalformedInput: every decoder answers bad bytes with an error, never a panic.
func TestMalformedInput(t *testing.T) {
	inputs := [][]byte{nil, {0}, {0xff, 0xff, 0xff, 0xff}, []byte("{}"), []byte("[{]"), bytes.Repeat([]byte{0x0a, 0xff}, 100),
		{0x0c, 0x7f, 0xff, 0xff, 0xff}} // a Thrift list that claims 2 billion elements
	for _, encoding := range config.Encodings {
		d, err := New(encoding)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range inputs {
			td, err := decodeOne(t, d, in)
			if err == nil && td.SpanCount() > 0 {
				t.Errorf("%s decoded %x into %d spans", encoding, in, td.SpanCount())
			}
		}
	}
}
