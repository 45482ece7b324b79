package decode

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/internal/spangen"
)

func TestDecodeJaegerProto(t *testing.T) {
	d, err := New(config.EncodingJaegerProto)
	if err != nil {
		t.Fatal(err)
	}
	span := spangen.New(7).JaegerSpan(42)
	data, err := span.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	td, err := decodeOne(t, d, data)
	if err != nil {
		t.Fatal(err)
	}
	if td.SpanCount() != 1 {
		t.Fatalf("%d spans, want 1", td.SpanCount())
	}
	rs := td.ResourceSpans().At(0)
	if svc, _ := rs.Resource().Attributes().Get("service.name"); svc.Str() != span.Process.ServiceName {
		t.Errorf("service.name %q, want %q", svc.Str(), span.Process.ServiceName)
	}
	got := rs.ScopeSpans().At(0).Spans().At(0)
	if got.Name() != span.OperationName || got.Kind() != ptrace.SpanKindServer {
		t.Errorf("span %q kind %v", got.Name(), got.Kind())
	}
	if tid := got.TraceID(); [16]byte(tid) != [16]byte(spangen.TraceKey(span.TraceID)) {
		t.Errorf("trace ID %x", tid)
	}
	if got.ParentSpanID().IsEmpty() || got.Events().Len() != len(span.Logs) {
		t.Errorf("parent %v, %d events for %d logs", got.ParentSpanID(), got.Events().Len(), len(span.Logs))
	}
	if v, ok := got.Attributes().Get("http.response.status_code"); !ok || v.Int() == 0 {
		t.Errorf("tags not carried: %v", got.Attributes().AsRaw())
	}

	for _, bad := range [][]byte{nil, data[:len(data)/2], []byte("{\"traceId\":1}"), {0xff, 0xff, 0xff}} {
		if _, err := decodeOne(t, d, bad); err == nil {
			t.Errorf("decoded %q without error", bad)
		}
	}
}
