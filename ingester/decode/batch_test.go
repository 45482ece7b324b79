package decode

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/jsonpb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/otlpwire"
	"github.com/spanflow/spanflow/internal/spangen"
)

// decodeOne decodes one message into a batch of its own and returns the batch's bytes as
// pdata reads them, checking the span count the decoder gives.
func decodeOne(t testing.TB, d Decoder, data []byte) (ptrace.Traces, error) {
	t.Helper()
	var b otlpwire.Batch
	n, err := d.Decode(&b, data)
	if err != nil {
		if b.Spans() != 0 || b.Request().Len() != 0 {
			t.Fatalf("a failed decode left %d spans, %d bytes in the batch", b.Spans(), b.Request().Len())
		}
		return ptrace.Traces{}, err
	}
	td, err := b.Request().Traces()
	if err != nil {
		t.Fatalf("the batch is not an OTLP request: %v", err)
	}
	if n != td.SpanCount() || b.Spans() != n {
		t.Fatalf("the decoder counted %d spans (batch %d), the request holds %d", n, b.Spans(), td.SpanCount())
	}
	return td, nil
}

// perSpan splits traces into one JSON document per span, holding its resource and scope,
// sorted: the same spans under the same resources, however they are grouped.
func perSpan(t *testing.T, td ptrace.Traces) []string {
	t.Helper()
	var docs []string
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, span := range ss.Spans().All() {
				one := ptrace.NewTraces()
				ors := one.ResourceSpans().AppendEmpty()
				rs.Resource().CopyTo(ors.Resource())
				ors.SetSchemaUrl(rs.SchemaUrl())
				oss := ors.ScopeSpans().AppendEmpty()
				ss.Scope().CopyTo(oss.Scope())
				oss.SetSchemaUrl(ss.SchemaUrl())
				span.CopyTo(oss.Spans().AppendEmpty())
				docs = append(docs, string(jsonOf(t, one)))
			}
		}
	}
	slices.Sort(docs)
	return docs
}

// TestJaegerSpansShareTheirProcess decodes a delivery's worth of Jaeger spans into one
// batch: each process becomes one ResourceSpans (not one per span), each span is what
// the library makes of its message alone, and the request is smaller for it.
func TestJaegerSpansShareTheirProcess(t *testing.T) {
	for _, encoding := range []string{config.EncodingJaegerProto, config.EncodingJaegerJSON} {
		t.Run(encoding, func(t *testing.T) {
			d, err := New(encoding)
			if err != nil {
				t.Fatal(err)
			}
			gen := spangen.New(21)
			start := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
			var batch otlpwire.Batch
			want := ptrace.NewTraces()
			processes := map[string]bool{}
			ungrouped := 0
			for i := range 200 {
				for _, span := range gen.JaegerTrace(uint64(i), start) {
					var data []byte
					if encoding == config.EncodingJaegerJSON {
						var buf bytes.Buffer
						if err := (&jsonpb.Marshaler{}).Marshal(&buf, span); err != nil {
							t.Fatal(err)
						}
						data = buf.Bytes()
					} else if data, err = span.Marshal(); err != nil {
						t.Fatal(err)
					}
					if _, err := d.Decode(&batch, data); err != nil {
						t.Fatal(err)
					}
					one, err := decodeOne(t, d, data)
					if err != nil {
						t.Fatal(err)
					}
					ungrouped += otlpwire.RequestOf(one).Len()
					one.ResourceSpans().MoveAndAppendTo(want.ResourceSpans())
					key, _ := span.Process.Marshal()
					processes[string(key)] = true
				}
			}
			req := batch.Request()
			got, err := req.Traces()
			if err != nil {
				t.Fatal(err)
			}
			if got.ResourceSpans().Len() != len(processes) {
				t.Errorf("%d resource spans for %d distinct processes", got.ResourceSpans().Len(), len(processes))
			}
			if req.Spans != want.SpanCount() {
				t.Errorf("the batch counts %d spans, the messages hold %d", req.Spans, want.SpanCount())
			}
			if !slices.Equal(perSpan(t, got), perSpan(t, want)) {
				t.Error("the grouped spans differ from the spans decoded one message at a time")
			}
			t.Logf("%d spans, %d processes: %d bytes grouped, %d bytes one resource a span (%.2f)",
				req.Spans, len(processes), req.Len(), ungrouped, float64(req.Len())/float64(ungrouped))
		})
	}
}

// TestTracesShareTheirResource decodes a delivery's worth of messages of one trace each,
// as the Collector's Kafka exporter writes them, in every encoding of that shape, into one
// batch: the spans of one resource share one ResourceSpans whatever message they came in,
// and each span is what decoding its message alone makes of it.
func TestTracesShareTheirResource(t *testing.T) {
	for _, encoding := range []string{config.EncodingOTLPProto, config.EncodingOTLPJSON, config.EncodingZipkinJSON, config.EncodingZipkinProto} {
		t.Run(encoding, func(t *testing.T) {
			d, err := New(encoding)
			if err != nil {
				t.Fatal(err)
			}
			gen := spangen.New(22)
			start := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
			var batch otlpwire.Batch
			want := ptrace.NewTraces()
			var messages [][]byte
			for i := range 100 {
				td, _, err := gen.OTLPTrace(uint64(i), start.Add(time.Duration(i)*time.Millisecond))
				if err != nil {
					t.Fatal(err)
				}
				for _, data := range encodeAs(t, encoding, td) {
					messages = append(messages, data)
					one, err := decodeOne(t, d, data)
					if err != nil {
						t.Fatal(err)
					}
					one.ResourceSpans().MoveAndAppendTo(want.ResourceSpans())
				}
			}
			// Twice: the second time in the memory the batch kept from the first.
			for round := range 2 {
				batch.Reset()
				for _, data := range messages {
					if _, err := d.Decode(&batch, data); err != nil {
						t.Fatal(err)
					}
				}
				if round == 0 {
					if got, err := batch.Request().Traces(); err != nil || got.SpanCount() != want.SpanCount() {
						t.Fatalf("first round: %d spans, %v", got.SpanCount(), err)
					}
				}
			}
			resources := map[string]bool{}
			for _, rs := range want.ResourceSpans().All() {
				key := ptrace.NewTraces()
				rs.Resource().CopyTo(key.ResourceSpans().AppendEmpty().Resource())
				key.ResourceSpans().At(0).SetSchemaUrl(rs.SchemaUrl())
				resources[string(jsonOf(t, key))] = true
			}
			req := batch.Request()
			got, err := req.Traces()
			if err != nil {
				t.Fatal(err)
			}
			// Zipkin's translator writes a resource's attributes in a new order on each
			// decode, so that the same one has other bytes in another message: fewer merge.
			exact := !strings.HasPrefix(encoding, "zipkin")
			if exact && got.ResourceSpans().Len() != len(resources) || got.ResourceSpans().Len() >= want.ResourceSpans().Len() {
				t.Errorf("%d resource spans for %d distinct resources (%d one message at a time)",
					got.ResourceSpans().Len(), len(resources), want.ResourceSpans().Len())
			}
			if req.Spans != want.SpanCount() {
				t.Errorf("the batch counts %d spans, the messages hold %d", req.Spans, want.SpanCount())
			}
			if !slices.Equal(perSpan(t, sortedAttributes(got)), perSpan(t, sortedAttributes(want))) {
				t.Error("the merged spans differ from the spans decoded one message at a time")
			}
		})
	}
}

// sortedAttributes puts the attributes of td's resources, spans and events in the order of
// their keys: Zipkin's translator writes them in a Go map's order, new on each decode.
func sortedAttributes(td ptrace.Traces) ptrace.Traces {
	sortMap := func(m pcommon.Map) {
		sorted := pcommon.NewMap()
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range m.All() {
				if !yield(k) {
					return
				}
			}
		})
		for _, k := range keys {
			v, _ := m.Get(k)
			v.CopyTo(sorted.PutEmpty(k))
		}
		sorted.CopyTo(m)
	}
	for _, rs := range td.ResourceSpans().All() {
		sortMap(rs.Resource().Attributes())
		for _, ss := range rs.ScopeSpans().All() {
			for _, span := range ss.Spans().All() {
				sortMap(span.Attributes())
				for _, event := range span.Events().All() {
					sortMap(event.Attributes())
				}
			}
		}
	}
	return td
}
