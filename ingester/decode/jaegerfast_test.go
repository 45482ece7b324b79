package decode

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gogo/protobuf/jsonpb"
	model "github.com/jaegertracing/jaeger-idl/model/v1"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/otlpwire"
	"github.com/spanflow/spanflow/internal/spangen"
	"github.com/spanflow/spanflow/internal/tracetest"
)

// variant changes a realistic span into one of the shapes the translator treats specially.
var variants = []func(r *rand.Rand, s *model.Span){
	func(*rand.Rand, *model.Span) {},
	func(_ *rand.Rand, s *model.Span) { s.Tags = append(s.Tags, model.Bool("error", true)) },
	func(_ *rand.Rand, s *model.Span) { s.Tags = append(s.Tags, model.Bool("error", false)) },
	func(_ *rand.Rand, s *model.Span) {
		s.Tags = append(s.Tags, model.String("otel.status_code", "ERROR"), model.String("otel.status_description", "boom"))
	},
	func(_ *rand.Rand, s *model.Span) { s.Tags = append(s.Tags, model.String("w3c.tracestate", "a=b")) },
	func(_ *rand.Rand, s *model.Span) {
		s.Tags = append(s.Tags, model.String("otel.scope.name", "lib"), model.String("otel.scope.version", "1"))
	},
	func(r *rand.Rand, s *model.Span) {
		s.Tags = replaceTag(s.Tags, model.String("http.status_code", fmt.Sprint([]int{200, 404, 503, 99, 399}[r.IntN(5)])))
	},
	func(_ *rand.Rand, s *model.Span) {
		s.Tags = replaceTag(s.Tags, model.String("http.status_code", "not a number"))
	},
	func(r *rand.Rand, s *model.Span) {
		s.Tags = replaceTag(s.Tags, model.Int64("http.response.status_code", int64([]int{200, 404, 500}[r.IntN(3)])))
	},
	func(r *rand.Rand, s *model.Span) {
		s.Tags = replaceTag(s.Tags, model.String("span.kind", []string{"client", "producer", "consumer", "internal", "weird"}[r.IntN(5)]))
	},
	func(_ *rand.Rand, s *model.Span) { s.Tags = append(s.Tags, model.Binary("blob", []byte{0, 1, 2})) },
	func(_ *rand.Rand, s *model.Span) { s.Tags = append(s.Tags, model.String("component", "duplicate key")) },
	func(_ *rand.Rand, s *model.Span) { s.Process = nil },
	func(_ *rand.Rand, s *model.Span) {
		if s.Process != nil {
			s.Process.ServiceName = ""
		}
	},
	func(_ *rand.Rand, s *model.Span) { s.Process = &model.Process{} },
	func(_ *rand.Rand, s *model.Span) {
		if s.Process != nil {
			s.Process.ServiceName = "OTLPResourceNoServiceName"
		}
	},
	func(_ *rand.Rand, s *model.Span) {
		if s.Process != nil {
			s.Process.Tags = append(s.Process.Tags, model.String("host.name", "given"))
		}
	},
	func(_ *rand.Rand, s *model.Span) {
		if s.Process != nil {
			s.Process.Tags = append(s.Process.Tags, model.String("opencensus.exporterversion", "given"))
		}
	},
	func(_ *rand.Rand, s *model.Span) { s.References = nil },
	func(_ *rand.Rand, s *model.Span) {
		if len(s.References) > 0 {
			s.References[0].RefType = model.FollowsFrom
		}
	},
	func(r *rand.Rand, s *model.Span) {
		s.References = append(s.References, model.SpanRef{TraceID: model.TraceID{Low: r.Uint64()}, SpanID: 7, RefType: model.ChildOf})
	},
	func(_ *rand.Rand, s *model.Span) {
		s.References = append([]model.SpanRef{{TraceID: s.TraceID, SpanID: 9, RefType: model.FollowsFrom}}, s.References...)
	},
	func(_ *rand.Rand, s *model.Span) { s.Logs = append(s.Logs, model.Log{Timestamp: s.StartTime}) },
	func(_ *rand.Rand, s *model.Span) { // no "event" field
		if len(s.Logs) > 0 {
			s.Logs[0].Fields = s.Logs[0].Fields[1:]
		}
	},
	func(_ *rand.Rand, s *model.Span) { s.Flags = 0 },
	func(_ *rand.Rand, s *model.Span) { s.Duration = 0; s.StartTime = time.Unix(0, 0) },
	func(_ *rand.Rand, s *model.Span) { s.Tags = nil; s.Logs = nil },
	func(_ *rand.Rand, s *model.Span) { s.Warnings = []string{"w1"}; s.ProcessID = "p1" },
	func(_ *rand.Rand, s *model.Span) { s.SpanID = 0 },
	// The tags the translator turns into span fields, in the shapes it treats apart.
	func(_ *rand.Rand, s *model.Span) { s.Tags = append(s.Tags, model.String("error", "true")) },
	func(_ *rand.Rand, s *model.Span) {
		s.Tags = append(s.Tags, model.Bool("error", true), model.String("otel.status_description", "d"), model.String("http.status_message", "m"))
	},
	func(_ *rand.Rand, s *model.Span) {
		s.Tags = append(s.Tags, model.Bool("error", true), model.String("http.status_message", "m"), model.String("otel.status_code", "OK"))
	},
	func(r *rand.Rand, s *model.Span) {
		s.Tags = append(s.Tags, model.String("otel.status_code", []string{"ok", "OK", "Error", "UNSET", ""}[r.IntN(5)]))
	},
	func(_ *rand.Rand, s *model.Span) {
		s.Tags = append(s.Tags, model.Int64("otel.status_code", 2), model.String("otel.status_description", "x"))
	},
	func(_ *rand.Rand, s *model.Span) {
		s.Tags = append(s.Tags, model.Bool("error", false), model.String("otel.status_code", "ERROR"), model.String("otel.status_description", "y"))
	},
	func(r *rand.Rand, s *model.Span) {
		s.Tags = replaceTag(s.Tags, model.String("http.status_code", fmt.Sprint([]int{404, 503}[r.IntN(2)])))
		s.Tags = append(s.Tags, model.String("http.status_message", "Service Unavailable"))
	},
	func(_ *rand.Rand, s *model.Span) {
		s.Tags = append(s.Tags, model.String("otel.scope.version", "no name"))
	},
	func(_ *rand.Rand, s *model.Span) {
		s.Tags = append(s.Tags, model.String("otel.scope.name", "a"), model.String("otel.scope.name", "b"), model.Int64("otel.scope.version", 3))
	},
	func(_ *rand.Rand, s *model.Span) { s.Tags = append(s.Tags, model.Int64("otel.scope.name", 7)) },
	func(_ *rand.Rand, s *model.Span) {
		s.Tags = append(s.Tags, model.String("w3c.tracestate", "x=1"), model.Int64("w3c.tracestate", 2))
	},
	func(_ *rand.Rand, s *model.Span) { s.Tags = []model.KeyValue{model.Bool("error", true)} },
	func(_ *rand.Rand, s *model.Span) { s.Tags = []model.KeyValue{model.String("otel.scope.name", "only")} },
}

func replaceTag(tags []model.KeyValue, kv model.KeyValue) []model.KeyValue {
	for i := range tags {
		if tags[i].Key == kv.Key || (kv.Key == "http.response.status_code" && tags[i].Key == "http.status_code") {
			tags[i] = kv
			return tags
		}
	}
	return append(tags, kv)
}

// assertSame decodes data with the library path and a fast path and fails unless they
// agree exactly: both fail, or both give the same traces.
func assertSame(t *testing.T, library, fast Decoder, data []byte) {
	t.Helper()
	want, wantErr := decodeOne(t, library, data)
	got, gotErr := decodeOne(t, fast, data)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("library error %v, fast path error %v, input %q", wantErr, gotErr, data)
	}
	if wantErr != nil {
		return
	}
	if w, g := jsonOf(t, want), jsonOf(t, got); !bytes.Equal(w, g) {
		t.Fatalf("fast path differs from the library\nlibrary: %s\nfast:    %s\ninput %q", w, g, data)
	}
}

// assertSameAsLibrary holds the jaeger_proto fast path to jaeger-idl and the translator.
func assertSameAsLibrary(t *testing.T, fast *jaegerFast, data []byte) {
	t.Helper()
	assertSame(t, jaegerProto{}, fast, data)
}

func jsonOf(t *testing.T, td ptrace.Traces) []byte {
	t.Helper()
	data, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestJaegerFastMatchesLibrary(t *testing.T) {
	fast := newJaegerFast()
	gen := spangen.New(3)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 3000 {
		span := gen.JaegerSpan(uint64(i))
		variants[i%len(variants)](r, span)
		if r.IntN(4) == 0 { // and sometimes a second variant on top
			variants[r.IntN(len(variants))](r, span)
		}
		data, err := span.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		assertSameAsLibrary(t, fast, data)
	}
}

func TestJaegerFastTakesTheFastPath(t *testing.T) {
	fast := newJaegerFast()
	plain, _ := spangen.New(1).JaegerSpan(1).Marshal()
	// What Jaeger v2 and the Collector write: scope, status and error tags from OTLP.
	fromOTLP := encodeAs(t, config.EncodingJaegerProto, tracetest.Corpus())
	for _, data := range append(fromOTLP, plain) {
		var s wireSpan
		if !s.parse(data, string(data)) || !fast.handles(&s) {
			t.Fatalf("a span falls back to the library: %x", data)
		}
		assertSameAsLibrary(t, fast, data)
	}
}

// FuzzJaegerProto holds the fast decoder to the library on arbitrary bytes: same error or
// not, same traces. Run it with: go test -fuzz=FuzzJaegerProto ./ingester/decode
func FuzzJaegerProto(f *testing.F) {
	gen := spangen.New(9)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range len(variants) {
		span := gen.JaegerSpan(uint64(i))
		variants[i](r, span)
		data, _ := span.Marshal()
		f.Add(data)
	}
	f.Add([]byte{0x1a, 0x00})
	f.Add([]byte{0x0a, 0x10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	fast := newJaegerFast()
	f.Fuzz(func(t *testing.T, data []byte) {
		assertSameAsLibrary(t, fast, data)
	})
}

// BenchmarkJaegerDecode compares the library path with the fast path on realistic spans.
func BenchmarkJaegerDecode(b *testing.B) {
	gen := spangen.New(4)
	msgs := make([][]byte, 1000)
	for i := range msgs {
		msgs[i], _ = gen.JaegerSpan(uint64(i)).Marshal()
	}
	for _, d := range []struct {
		name    string
		decoder Decoder
	}{{"library", jaegerProto{}}, {"fast", newJaegerFast()}} {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			var batch otlpwire.Batch
			for b.Loop() {
				batch.Reset()
				if _, err := d.decoder.Decode(&batch, msgs[i%len(msgs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// assertJSONSameAsLibrary holds the jaeger_json transcoding path to jsonpb.
func assertJSONSameAsLibrary(t *testing.T, fast *jaegerJSONFast, data []byte) {
	t.Helper()
	assertSame(t, jaegerJSON{}, fast, data)
}

// jaegerJSONVariants are the spans of the proto variants in jsonpb's JSON.
func jaegerJSONVariants(t testing.TB, n int) [][]byte {
	gen := spangen.New(4)
	r := rand.New(rand.NewPCG(7, 8))
	var out [][]byte
	for i := range n {
		span := gen.JaegerSpan(uint64(i))
		variants[i%len(variants)](r, span)
		var buf bytes.Buffer
		if err := (&jsonpb.Marshaler{}).Marshal(&buf, span); err != nil {
			t.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	return out
}

func TestJaegerJSONFastMatchesLibrary(t *testing.T) {
	fast := newJaegerJSONFast()
	inputs := jaegerJSONVariants(t, 2*len(variants))
	inputs = append(inputs, encodeAs(t, config.EncodingJaegerJSON, tracetest.Corpus())...)
	// Shapes jsonpb reads that the transcoder leaves to it, and shapes both refuse.
	inputs = append(inputs, [][]byte{
		[]byte(`{"trace_id":"AAAAAAAAAAEAAAAAAAAAAg==","spanId":"AAAAAAAAAAM="}`),
		[]byte(`{"traceId":"AAAAAAAAAAEAAAAAAAAAAg==","spanId":"AAAAAAAAAAM=","tags":null}`),
		[]byte(`{"traceId":"AAAAAAAAAAEAAAAAAAAAAg==","spanId":"AAAAAAAAAAM=","tags":[{"key":"n","vType":2,"vInt64":5}]}`),
		[]byte(`{"traceId":"AAAAAAAAAAEAAAAAAAAAAg==","spanId":"AAAAAAAAAAM=","tags":[{"key":"f","vType":"FLOAT64","vFloat64":"NaN"}]}`),
		[]byte(`{"traceId":"AAAAAAAAAAEAAAAAAAAAAg==","spanId":"AAAAAAAAAAM=","operationName":"a\u00e9\n","duration":"1m2.5s"}`),
		[]byte(`{"traceId":"AAAAAAAAAAEAAAAAAAAAAg==","spanId":"AAAAAAAAAAM=","operationName":"x","operationName":"y"}`),
		[]byte(`{"traceId":"AAAAAAAAAAEAAAAAAAAAAg==","spanId":"AAAAAAAAAAM=","startTime":"2026-11-20T10:30:00+01:00"}`),
		[]byte(`{"traceId":"AAAAAAAAAAEAAAAAAAAAAg==","spanId":"AAAAAAAAAAM=","unknown":1}`),
		[]byte(`{"traceId":"not base64","spanId":"AAAAAAAAAAM="}`),
		[]byte(`{"traceId":"AAAAAAAAAAEAAAAAAAAAAg==","spanId":"AAAAAAAAAAM=","flags":1.5}`),
		[]byte(`{"traceId":"AAAAAAAAAAEAAAAAAAAAAg==","spanId":"AAAAAAAAAAM=","logs":[{"timestamp":"2026-11-20T09:30:00Z","fields":[{"key":"event","vStr":"e"}]}]}`),
		[]byte(`{}`), []byte(`[]`), []byte(`{"traceId":`), []byte(`null`),
	}...)
	// Tags as jsonpb writes them are read in one pass, not by the general reader.
	for _, tag := range []string{`{"key":"s","vStr":"v"}`, `{"key":"e"}`, `{"key":"b","vType":"BOOL","vBool":true}`,
		`{"key":"i","vType":"INT64","vInt64":"-5"}`, `{"key":"d","vType":"FLOAT64","vFloat64":1.5e-7}`, `{"key":"n","vType":"INT64"}`} {
		if tr := (jsonTranscoder{in: []byte(tag)}); !tr.plainTag(spanTags) || tr.pos != len(tag) {
			t.Errorf("%s is not read in one pass", tag)
		}
	}
	// Tags in the shapes the one-pass reader takes, next to shapes it leaves to the general
	// reader, and shapes jsonpb refuses.
	const ids = `"traceId":"AAAAAAAAAAEAAAAAAAAAAg==","spanId":"AAAAAAAAAAM="`
	for _, tags := range []string{
		`{"key":"s","vStr":"é ü"},{"key":"t","vType":"STRING","vStr":"x"},{"key":"e"},{"key":"b","vType":"BOOL"},{"key":"c","vType":"BOOL","vBool":true},{"key":"d","vType":"BOOL","vBool":false}`,
		`{"key":"i","vType":"INT64","vInt64":"-12"},{"key":"z","vType":"INT64","vInt64":"-0"},{"key":"n","vType":"INT64"}`,
		`{"key":"i","vType":"INT64","vInt64":"007"}`, `{"key":"i","vType":"INT64","vInt64":"1e3"}`, `{"key":"i","vType":"INT64","vInt64":"+1"}`,
		`{"key":"i","vType":"INT64","vInt64":"9223372036854775808"}`, `{"key":"i","vType":"INT64","vInt64":12}`,
		`{"key":"f","vType":"FLOAT64","vFloat64":1E5},{"key":"g","vType":"FLOAT64","vFloat64":-0},{"key":"h","vType":"FLOAT64","vFloat64":6.048500221317232}`,
		`{"key":"f","vType":"FLOAT64","vFloat64":1e400}`, `{"key":"f","vType":"FLOAT64","vFloat64":01}`,
		`{"key":"s","vStr":"bad ` + "\xff" + ` utf-8"}`, `{"key":"s","vStr":"esc\"aped"}`, `{"key":"s` + "\xff" + `","vStr":"x"}`,
		`{"key":"x","vType":"BINARY","vBinary":"AAEC"}`, `{"key":"x","vType":"WHAT","vStr":"x"}`, `{"vStr":"x","key":"k"}`,
		`{"key":"k","vStr":"x","vStr":"y"}`, `{"key":"k","vStr":"x"`, `{"key":"k","vStr":"x"x,{"key":"l"}`, `{"key":"b","vType":"BINARY"}`, `{"key":"k","vType":"BOOL","vBool":"true"}`,
	} {
		inputs = append(inputs, []byte(`{`+ids+`,"tags":[`+tags+`],"process":{"serviceName":"p","tags":[`+tags+`]}}`))
	}
	for _, data := range inputs {
		assertJSONSameAsLibrary(t, fast, data)
	}
	// The library path is only the exception.
	var transcoded int
	for _, data := range jaegerJSONVariants(t, len(variants)) {
		tr := jsonTranscoder{in: data}
		if _, ok := tr.span(); ok {
			transcoded++
		}
	}
	if transcoded != len(variants) {
		t.Errorf("%d of %d jsonpb-written spans transcoded, want all", transcoded, len(variants))
	}
}

// FuzzJaegerJSON holds the transcoding path to jsonpb's on arbitrary bytes. Run it with:
// go test -fuzz=FuzzJaegerJSON ./ingester/decode
func FuzzJaegerJSON(f *testing.F) {
	for _, data := range jaegerJSONVariants(f, len(variants)) {
		f.Add(data)
	}
	f.Add([]byte(`{"traceId":"AAAAAAAAAAEAAAAAAAAAAg==","spanId":"AAAAAAAAAAM=","tags":[{"key":"n","vType":"INT64","vInt64":5}]}`))
	f.Add([]byte(`{"traceId":"AAAAAAAAAAAAAAAAAAAAAQ==","spanId":"AAAAAAAAAAE=","operationName":"x"}`))
	fast := newJaegerJSONFast()
	f.Fuzz(func(t *testing.T, data []byte) {
		assertJSONSameAsLibrary(t, fast, data)
	})
}

// TestJaegerFastManyTagsMatchLibrary: spans, processes and logs of more tags than the
// attribute lists walk (they keep an index from 32 on), with repeated keys and the tags
// the translator renames, moves or removes among them, come out as the library's.
func TestJaegerFastManyTagsMatchLibrary(t *testing.T) {
	fast := newJaegerFast()
	gen := spangen.New(7)
	r := rand.New(rand.NewPCG(7, 8))
	special := []model.KeyValue{model.String("span.kind", "server"), model.String("w3c.tracestate", "a=b"), model.Bool("error", true),
		model.String("otel.status_code", "ERROR"), model.Int64("http.status_code", 503), model.String("hostname", "h1"),
		model.String("jaeger.version", "Go-2.30"), model.String("event", "boom")}
	tags := func(n int) []model.KeyValue {
		kvs := make([]model.KeyValue, 0, n)
		for i := range n {
			key := fmt.Sprintf("k%d", r.IntN(n)) // repeated keys among them
			switch r.IntN(8) {
			case 0:
				kvs = append(kvs, special[r.IntN(len(special))])
			case 1:
				kvs = append(kvs, model.Int64(key, int64(i)))
			default:
				kvs = append(kvs, model.String(key, fmt.Sprint(i)))
			}
		}
		return kvs
	}
	for i := range 300 {
		span := gen.JaegerSpan(uint64(i))
		n := 20 + r.IntN(200)
		span.Tags = tags(n)
		span.Process.Tags = tags(n)
		span.Logs = []model.Log{{Timestamp: span.StartTime, Fields: tags(n)}}
		data, err := span.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		assertSameAsLibrary(t, fast, data)
	}
}

// TestLargeProcessesAreNotKept: a process of more than maxKnownProcessBytes is transcoded
// at every span rather than kept, and a span of thousands of tags leaves no list of
// thousands to the next: a pooled decoding goroutine's memory stays small.
func TestLargeProcessesAreNotKept(t *testing.T) {
	fast := newJaegerFast()
	var s wireSpan
	for i := range 4 {
		span := spangen.New(1).JaegerSpan(uint64(i))
		span.Process.Tags = append(span.Process.Tags, model.String("big", string(bytes.Repeat([]byte{'a' + byte(i)}, maxKnownProcessBytes))))
		span.Tags = make([]model.KeyValue, 5000)
		for j := range span.Tags {
			span.Tags[j] = model.String(fmt.Sprintf("k%d", j), "v")
		}
		data, err := span.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		assertSameAsLibrary(t, fast, data)
		s.reset()
		if !s.parse(data, string(data)) {
			t.Fatal("the span is not taken by the fast path")
		}
		var b otlpwire.Batch
		fast.transcode(&b, &s)
		if len(s.resources) != 0 {
			t.Fatalf("a process of %d bytes is kept", len(s.process))
		}
		s.reset()
		if cap(s.tags) > 1024 || cap(s.attrs.kvs) > 1024 || s.attrs.index != nil {
			t.Fatalf("a span of 5,000 tags left lists of %d and %d", cap(s.tags), cap(s.attrs.kvs))
		}
	}
}
