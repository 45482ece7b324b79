package decode

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/gogo/protobuf/jsonpb"
	model "github.com/jaegertracing/jaeger-idl/model/v1"
	jaegertranslator "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/jaeger"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/zipkin/zipkinv2"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/otlpwire"
	"github.com/spanflow/spanflow/internal/spangen"
	"github.com/spanflow/spanflow/internal/tracetest"
)

// encodeAs writes td as the messages a producer of the encoding puts on Kafka, with the
// encoders of the OpenTelemetry and Jaeger libraries: OTLP and Zipkin as one message,
// Jaeger as one span per message (with its process), as Jaeger's Kafka writer does.
func encodeAs(t testing.TB, encoding string, td ptrace.Traces) [][]byte {
	t.Helper()
	one := func(data []byte, err error) [][]byte {
		if err != nil {
			t.Fatalf("%s: %v", encoding, err)
		}
		return [][]byte{data}
	}
	switch encoding {
	case config.EncodingOTLPProto:
		return one((&ptrace.ProtoMarshaler{}).MarshalTraces(td))
	case config.EncodingOTLPJSON:
		return one((&ptrace.JSONMarshaler{}).MarshalTraces(td))
	case config.EncodingZipkinJSON:
		return one(zipkinv2.NewJSONTracesMarshaler().MarshalTraces(td))
	case config.EncodingZipkinProto:
		return one(zipkinv2.NewProtobufTracesMarshaler().MarshalTraces(td))
	case config.EncodingJaegerProto, config.EncodingJaegerJSON:
		var msgs [][]byte
		for _, batch := range jaegertranslator.ProtoFromTraces(td) {
			for _, span := range batch.Spans {
				span.Process = batch.Process
				if encoding == config.EncodingJaegerProto {
					msgs = append(msgs, one(span.Marshal())...)
					continue
				}
				var buf bytes.Buffer
				if err := (&jsonpb.Marshaler{}).Marshal(&buf, span); err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, buf.Bytes())
			}
		}
		return msgs
	}
	t.Fatalf("no encoder for %s", encoding)
	return nil
}

// keeps is how each encoding differs from OTLP: Zipkin has no resource (readers restore
// the attributes they know to be resource attributes, the rest stay on the span), and its
// JSON lower-cases span names.
var keeps = map[string]tracetest.Keeps{
	config.EncodingOTLPProto:   {},
	config.EncodingOTLPJSON:    {},
	config.EncodingJaegerProto: {},
	config.EncodingJaegerJSON:  {},
	config.EncodingZipkinJSON:  {ResourceAsTags: true, LowerCaseNames: true},
	config.EncodingZipkinProto: {ResourceAsTags: true},
}

// TestRoundTripEveryEncoding encodes the shared test traces in each encoding with the
// producers' libraries and decodes them with spanflow's decoders: every span comes back,
// with what the encoding can carry. (zipkin_thrift has no encoder outside Zipkin v1
// reporters; TestZipkinThrift covers it with a fixture.)
func TestRoundTripEveryEncoding(t *testing.T) {
	corpus := tracetest.Corpus()
	want := tracetest.Views(corpus)
	for encoding, k := range keeps {
		t.Run(encoding, func(t *testing.T) {
			d, err := New(encoding)
			if err != nil {
				t.Fatal(err)
			}
			all := ptrace.NewTraces()
			for _, msg := range encodeAs(t, encoding, corpus) {
				td, err := decodeOne(t, d, msg)
				if err != nil {
					t.Fatal(err)
				}
				td.ResourceSpans().MoveAndAppendTo(all.ResourceSpans())
			}
			for _, diff := range tracetest.Compare(want, tracetest.Views(all), k) {
				t.Error(diff)
			}
		})
	}
}

// BenchmarkDecode measures every decoder on realistic spans (spangen's Jaeger spans: 11–12
// tags, logs, a reference, a process of 6 tags), encoded as each producer writes them:
// Jaeger one span per message, OTLP and Zipkin one trace (about 8 spans) per message.
// ns/span and allocs/span are per span, whatever the message holds.
func BenchmarkDecode(b *testing.B) {
	gen := spangen.New(11)
	var traces []ptrace.Traces
	start := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	for i := range 64 {
		spans := gen.JaegerTrace(uint64(i), start)
		batch := &model.Batch{Process: spans[0].Process}
		for _, s := range spans {
			s.Process = nil
			batch.Spans = append(batch.Spans, s)
		}
		td, err := jaegertranslator.ProtoToTraces([]*model.Batch{batch})
		if err != nil {
			b.Fatal(err)
		}
		traces = append(traces, td)
	}
	for _, encoding := range []string{config.EncodingOTLPProto, config.EncodingOTLPJSON, config.EncodingJaegerProto,
		config.EncodingJaegerJSON, config.EncodingZipkinJSON, config.EncodingZipkinProto} {
		var msgs [][]byte
		spans := 0
		for _, td := range traces {
			msgs = append(msgs, encodeAs(b, encoding, td)...)
			spans += td.SpanCount()
		}
		spansPerMsg := float64(spans) / float64(len(msgs))
		d, err := New(encoding)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(encoding, func(b *testing.B) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			i := 0
			var batch otlpwire.Batch
			for b.Loop() {
				if i%64 == 0 {
					batch.Reset()
				}
				if _, err := d.Decode(&batch, msgs[i%len(msgs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			runtime.ReadMemStats(&after)
			decoded := spansPerMsg * float64(i)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/decoded, "ns/span")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/decoded, "allocs/span")
			b.ReportMetric(spansPerMsg, "spans/msg")
		})
	}
}
