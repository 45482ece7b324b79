package decode

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/internal/spangen"
	"github.com/spanflow/spanflow/internal/tracetest"
)

// assertOTLPJSONSameAsLibrary holds the otlp_json transcoder to pdata's JSON path: both
// refuse the message, or both give the same spans under the same resources and scopes.
// (How they are grouped may differ: the batch merges resource spans by the bytes of their
// resource, which pdata writes in its order and the transcoder in the message's. Resource
// and scope spans that hold no span are not compared.)
func assertOTLPJSONSameAsLibrary(t *testing.T, data []byte) {
	t.Helper()
	d, err := New(config.EncodingOTLPJSON)
	if err != nil {
		t.Fatal(err)
	}
	fast := d.(*otlpJSONFast)
	want, wantErr := decodeOne(t, fast.library, data)
	got, gotErr := decodeOne(t, fast, data)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("library error %v, fast path error %v, input %q", wantErr, gotErr, data)
	}
	if wantErr != nil {
		return
	}
	if w, g := perSpan(t, want), perSpan(t, got); !slices.Equal(w, g) {
		t.Fatalf("fast path differs from the library\nlibrary: %q\nfast:    %q\ninput %q", w, g, data)
	}
}

// transcodes reports whether the fast path reads data itself, without the library.
func transcodes(data []byte) bool {
	t := jsonTranscoder{in: data}
	return t.tracesData()
}

// randomTraces is traces with every field OTLP/JSON has, in random shapes: values of every
// type (nested ones, empty ones, strings JSON must escape), resources drawn from a few so
// that some repeat, IDs blank or not, every span kind and status code, events, links.
func randomTraces(r *rand.Rand) ptrace.Traces {
	strs := []string{"", "plain", `quote " and \ backslash`, "line\nbreak\ttab", "é ü ß", "😀 emoji", "\x01 control", "</script>&"}
	str := func() string { return strs[r.IntN(len(strs))] }
	var value func(v pcommon.Value, depth int)
	value = func(v pcommon.Value, depth int) {
		switch r.IntN(9) {
		case 0:
			v.SetStr(str())
		case 1:
			v.SetBool(r.IntN(2) == 0)
		case 2:
			v.SetInt([]int64{0, -1, 42, math.MaxInt64, math.MinInt64}[r.IntN(5)])
		case 3:
			v.SetDouble([]float64{0, -0.5, r.Float64() * 1000, 1e300, 5e-324, 1e21, 1e-7, 123456789.123456789, math.NaN(), math.Inf(-1)}[r.IntN(10)])
		case 4:
			if depth < 3 {
				s := v.SetEmptySlice()
				for range r.IntN(3) {
					value(s.AppendEmpty(), depth+1)
				}
			}
		case 5:
			if depth < 3 {
				m := v.SetEmptyMap()
				for i := range r.IntN(3) {
					value(m.PutEmpty(str()+string(rune('a'+i))), depth+1)
				}
			}
		case 6:
			v.SetEmptyBytes().FromRaw([]byte{0, 1, 2, 250}[:r.IntN(5)])
		case 7:
			// an empty value
		default:
			v.SetStr("v")
		}
	}
	attrs := func(m pcommon.Map) {
		for i := range r.IntN(4) {
			value(m.PutEmpty([]string{"k", "service.name", "", "é"}[r.IntN(4)]+string(rune('0'+i))), 0)
		}
	}
	id := func(b []byte) {
		if r.IntN(6) > 0 {
			for i := range b {
				b[i] = byte(r.Uint32())
			}
		}
	}
	td := ptrace.NewTraces()
	resources := []func(pcommon.Resource){
		func(res pcommon.Resource) { res.Attributes().PutStr("service.name", "cart") },
		func(res pcommon.Resource) {
			res.Attributes().PutStr("service.name", "shop")
			res.SetDroppedAttributesCount(2)
		},
		func(pcommon.Resource) {},
	}
	for range 1 + r.IntN(3) {
		rs := td.ResourceSpans().AppendEmpty()
		if r.IntN(4) == 0 {
			attrs(rs.Resource().Attributes())
		} else {
			resources[r.IntN(len(resources))](rs.Resource())
		}
		if r.IntN(3) == 0 {
			rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
		}
		for range r.IntN(3) {
			ss := rs.ScopeSpans().AppendEmpty()
			if r.IntN(2) == 0 {
				ss.Scope().SetName("io.opentelemetry.contrib." + str())
				ss.Scope().SetVersion("1.2.3")
				attrs(ss.Scope().Attributes())
				ss.Scope().SetDroppedAttributesCount(uint32(r.IntN(2)))
				ss.SetSchemaUrl([]string{"", "s"}[r.IntN(2)])
			}
			for range r.IntN(4) {
				span := ss.Spans().AppendEmpty()
				var tid pcommon.TraceID
				var sid, pid pcommon.SpanID
				id(tid[:])
				id(sid[:])
				id(pid[:])
				span.SetTraceID(tid)
				span.SetSpanID(sid)
				span.SetParentSpanID(pid)
				span.TraceState().FromRaw([]string{"", "rojo=00f067aa0ba902b7"}[r.IntN(2)])
				span.SetFlags([]uint32{0, 1, 257, math.MaxUint32}[r.IntN(4)])
				span.SetName(str())
				span.SetKind(ptrace.SpanKind(r.IntN(6)))
				span.SetStartTimestamp(pcommon.Timestamp(r.Uint64() >> r.IntN(64)))
				span.SetEndTimestamp(pcommon.Timestamp(r.Uint64()))
				attrs(span.Attributes())
				span.SetDroppedAttributesCount(uint32(r.IntN(3)))
				for range r.IntN(3) {
					e := span.Events().AppendEmpty()
					e.SetTimestamp(pcommon.Timestamp(r.Uint64()))
					e.SetName(str())
					attrs(e.Attributes())
					e.SetDroppedAttributesCount(uint32(r.IntN(2)))
				}
				span.SetDroppedEventsCount(uint32(r.IntN(2)))
				for range r.IntN(2) {
					l := span.Links().AppendEmpty()
					var ltid pcommon.TraceID
					var lsid pcommon.SpanID
					id(ltid[:])
					id(lsid[:])
					l.SetTraceID(ltid)
					l.SetSpanID(lsid)
					l.TraceState().FromRaw([]string{"", "a=b"}[r.IntN(2)])
					attrs(l.Attributes())
					l.SetDroppedAttributesCount(uint32(r.IntN(2)))
					l.SetFlags(uint32(r.IntN(3)))
				}
				span.SetDroppedLinksCount(uint32(r.IntN(2)))
				span.Status().SetCode(ptrace.StatusCode(r.IntN(3)))
				span.Status().SetMessage([]string{"", "boom"}[r.IntN(2)])
			}
		}
	}
	return td
}

// otlpJSONInputs are OTLP/JSON messages as the Collector's Kafka exporter writes them
// (pdata's marshaler): the shared test traces, the benchmark's spans, random traces.
func otlpJSONInputs(t testing.TB, random int) [][]byte {
	var m ptrace.JSONMarshaler
	inputs := [][]byte{}
	add := func(td ptrace.Traces) {
		data, err := m.MarshalTraces(td)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, data)
	}
	add(tracetest.Corpus())
	add(twoServiceTrace())
	gen := spangen.New(11)
	for i := range 20 {
		td, _, err := gen.OTLPTrace(uint64(i), gen.JaegerSpan(uint64(i)).StartTime)
		if err != nil {
			t.Fatal(err)
		}
		add(td)
	}
	r := rand.New(rand.NewPCG(13, 14))
	for range random {
		add(randomTraces(r))
	}
	return inputs
}

func TestOTLPJSONFastMatchesLibrary(t *testing.T) {
	const random = 2000
	library := 0
	for _, data := range otlpJSONInputs(t, random) {
		assertOTLPJSONSameAsLibrary(t, data)
		// What pdata writes is transcoded, but for the doubles it quotes (NaN, ±Infinity).
		if !transcodes(data) {
			library++
			if !bytes.Contains(data, []byte(`"NaN"`)) && !bytes.Contains(data, []byte(`Infinity"`)) {
				t.Errorf("a message pdata wrote goes to the library: %s", data)
			}
		}
	}
	if library == 0 {
		t.Error("no message went to the library: the test does not try the library's doubles")
	}

	// Shapes other writers may use that the transcoder reads itself: snake_case keys,
	// enum names, bare numbers, quoted ones, escapes, upper-case hex.
	const span = `"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708"`
	for _, data := range []string{
		`{"resource_spans":[{"resource":{"attributes":[{"key":"service.name","value":{"string_value":"a"}}],"dropped_attributes_count":1},"scope_spans":[{"schema_url":"s","spans":[{"trace_id":"0102030405060708090A0B0C0D0E0F10","span_id":"0102030405060708","parent_span_id":"0a0b0c0d0e0f0102","trace_state":"a=b","start_time_unix_nano":1780000000000000000,"end_time_unix_nano":"1780000000000000001","kind":"SPAN_KIND_SERVER","status":{"code":"STATUS_CODE_ERROR","message":"m"},"dropped_events_count":2,"dropped_links_count":"3","dropped_attributes_count":4}]}],"schema_url":"r"}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"kind":2,"flags":"1","droppedAttributesCount":"3","name":"a\u00e9\n\/\"\b\f\r\t\\ \u0000"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"attributes":[{"key":"i","value":{"int_value":-12}},{"key":"d","value":{"double_value":-1.5e-3}},{"key":"b","value":{"bool_value":false}},{"key":"y","value":{"bytes_value":"AAEC"}},{"key":"a","value":{"array_value":{"values":[{"kvlist_value":{"values":[]}}]}}}]}]}]}]}`,
		"{\n \"resourceSpans\" : [ {\"scopeSpans\":[{\"spans\":[{\r\n\t" + span + ` , "kind" : 1 } ] } ] } ] }` + "\n",
	} {
		if !transcodes([]byte(data)) {
			t.Errorf("goes to the library: %s", data)
		}
		assertOTLPJSONSameAsLibrary(t, []byte(data))
	}

	// Attributes as pdata writes them are read in one pass, not by the general reader.
	for _, kv := range []string{`{"key":"s","value":{"stringValue":"v"}}`, `{"key":"i","value":{"intValue":"-5"}}`,
		`{"key":"b","value":{"boolValue":false}}`, `{"key":"d","value":{"doubleValue":1.5e-7}}`, `{"key":"","value":{"stringValue":""}}`} {
		if tr := (jsonTranscoder{in: []byte(kv)}); !tr.plainKeyValue(9) || tr.pos != len(kv) {
			t.Errorf("%s is not read in one pass", kv)
		}
	}

	// Shapes pdata reads that the transcoder leaves to it or reads as well, and shapes
	// both refuse.
	for _, data := range []string{
		`{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"0102030405060708090A0B0C0D0E0F10","span_id":"0102030405060708","start_time_unix_nano":1780000000000000000,"kind":"SPAN_KIND_SERVER","status":{"code":"STATUS_CODE_ERROR"}}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"kind":2,"flags":"1","droppedAttributesCount":"3"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"kind":"SPAN_KIND_NONE"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"kind":7,"status":{"code":9}}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"kind":-1}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"startTimeUnixNano":"007","endTimeUnixNano":"+1"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"startTimeUnixNano":007}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"startTimeUnixNano":1.5}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"startTimeUnixNano":"18446744073709551616"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"flags":4294967296}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"name":"a\u00e9\n\/\"","traceState":"x\ud83d\ude00"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"name":"\ud800 stray"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"name":"bad \x escape"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"name":"raw` + "\x01" + `control"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"name":"x","name":"y"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"trace_id":"0102030405060708090a0b0c0d0e0f11"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"span_id":"","flags":1,"flags":0}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"status":{"code":2},"status":{"message":"m"}}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"attributes":[],"attributes":[{"key":"a"}]}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"unknown":{"x":[1,2]}}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"attributes":null}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"name":null}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"","spanId":"","parentSpanId":""}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102","spanId":"0102030405060708"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f1","spanId":"0102030405060708"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz02030405060708090a0b0c0d0e0f10","spanId":"0102030405060708"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"attributes":[{"key":"d","value":{"doubleValue":1E5}},{"key":"e","value":{"doubleValue":-0}},{"key":"f","value":{"doubleValue":"NaN"}},{"key":"g","value":{"doubleValue":1.0000000001}},{"key":"h","value":{"doubleValue":12345678901234567890}}]}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"attributes":[{"key":"d","value":{"doubleValue":1e400}}]}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"attributes":[{"key":"i","value":{"intValue":"-9223372036854775808"}},{"key":"j","value":{"intValue":17}},{"key":"k","value":{"intValue":"+5"}},{"key":"l","value":{"intValue":-0}}]}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"attributes":[{"key":"i","value":{"intValue":"9223372036854775808"}}]}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"attributes":[{"key":"b","value":{"bytesValue":"AAEC"}},{"key":"c","value":{"bytesValue":""}},{"key":"s","value":{"stringValue":""}},{"key":"z","value":{}},{"key":"n"}]}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"attributes":[{"key":"b","value":{"bytesValue":"not base64!"}}]}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"attributes":[{"key":"two","value":{"stringValue":"a","intValue":"1"}},{"key":"three","value":{"arrayValue":{},"boolValue":false,"stringValue":""}}]}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"attributes":[{"key":"t","value":{"boolValue":true}},{"key":"f","value":{"bool_value":false}},{"key":"x","value":{"boolValue":"true"}}]}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"attributes":[{"key":"a","value":{"arrayValue":{"values":[{"stringValue":"x"},{"kvlistValue":{"values":[{"key":"k","value":{"intValue":"1"}}]}},{}]}}}]}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"attributes":[{"keyStrindex":1,"value":{"stringValueStrindex":2}}]}]}]}]}`,
		`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}],"entityRefs":[{"type":"service"}]},"scopeSpans":[{"spans":[{` + span + `}]}]}]}`,
		`{"resourceSpans":[{"deprecatedScopeSpans":[{"spans":[{` + span + `}]}]}]}`,
		`{"resourceSpans":[{"resource":{"droppedAttributesCount":1,"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},"scopeSpans":[{"spans":[{` + span + `}]}]},{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}],"droppedAttributesCount":1},"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060709"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"scope":{"name":"s","version":"1","attributes":[{"key":"a","value":{"stringValue":"b"}}],"droppedAttributesCount":1},"spans":[{` + span + `,"events":[{"timeUnixNano":"5","name":"e","attributes":[],"droppedAttributesCount":2}],"links":[{` + span + `,"traceState":"a=b","flags":1,"droppedAttributesCount":1}],"droppedEventsCount":1,"droppedLinksCount":1}],"schemaUrl":"x"}],"schemaUrl":"y"}]}`,
		`{"resourceSpans":[]}`, `{}`, ` { "resourceSpans" : [ ] } `, `{"resourceSpans":[]} trailing`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"name":"raw` + "\x1f" + `control"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"name":"unterminated`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"name":"escape at the end\`,
		`[]`, `null`, `{"resourceSpans":`, `{"resourceSpans":[{]}`, `{"resourceSpans":[{"scopeSpans":[{"spans":[{}]}]}]}`,
	} {
		assertOTLPJSONSameAsLibrary(t, []byte(data))
	}

	// Values nested deeper than the transcoder goes, and deeper than pdata reads.
	for _, depth := range []int{maxValueDepth - 1, maxValueDepth + 1, 20000} {
		arrays := strings.Repeat(`{"arrayValue":{"values":[`, depth) + `{"stringValue":"x"}` + strings.Repeat(`]}}`, depth)
		kvlists := strings.Repeat(`{"kvlistValue":{"values":[{"key":"k","value":`, depth) + `{"stringValue":"x"}` + strings.Repeat(`}]}}`, depth)
		for _, value := range []string{arrays, kvlists} {
			data := `{"resourceSpans":[{"scopeSpans":[{"spans":[{` + span + `,"attributes":[{"key":"deep","value":` + value + `}]}]}]}]}`
			assertOTLPJSONSameAsLibrary(t, []byte(data))
			if got := transcodes([]byte(data)); got != (depth < maxValueDepth) {
				t.Errorf("values %d deep: transcoded %v", depth, got)
			}
		}
	}
}

// FuzzOTLPJSON holds the otlp_json transcoder to pdata's JSON path on arbitrary bytes: same
// error or not, same spans. Run it with: go test -fuzz=FuzzOTLPJSON ./ingester/decode
func FuzzOTLPJSON(f *testing.F) {
	for _, data := range otlpJSONInputs(f, 20) {
		f.Add(data)
	}
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"a\u00e9","kind":"SPAN_KIND_CLIENT","attributes":[{"key":"d","value":{"doubleValue":1.5e3}}]}]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		assertOTLPJSONSameAsLibrary(t, data)
	})
}
