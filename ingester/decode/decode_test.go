package decode

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gogo/protobuf/jsonpb"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/otlpwire"
	"github.com/spanflow/spanflow/internal/spangen"
)

func sample() ptrace.Traces {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	for range 3 {
		ss.Spans().AppendEmpty().SetName("op")
	}
	return td
}

func TestDecodeOTLP(t *testing.T) {
	protoBytes, _ := (&ptrace.ProtoMarshaler{}).MarshalTraces(sample())
	jsonBytes, _ := (&ptrace.JSONMarshaler{}).MarshalTraces(sample())
	cases := []struct {
		encoding  string
		data      []byte
		wantSpans int
		wantErr   bool
	}{
		{config.EncodingOTLPProto, protoBytes, 3, false},
		{config.EncodingOTLPJSON, jsonBytes, 3, false},
		{config.EncodingOTLPProto, protoBytes[:len(protoBytes)-3], 0, true}, // truncated
		{config.EncodingOTLPJSON, []byte(`{"resourceSpans": [`), 0, true},
		{config.EncodingOTLPJSON, protoBytes, 0, true}, // wrong encoding for the topic
		{config.EncodingOTLPProto, nil, 0, true},
		{config.EncodingOTLPJSON, []byte{}, 0, true},
	}
	for i, tc := range cases {
		d, err := New(tc.encoding)
		if err != nil {
			t.Fatal(err)
		}
		td, err := decodeOne(t, d, tc.data)
		if (err != nil) != tc.wantErr {
			t.Errorf("case %d (%s): err = %v, want error %v", i, tc.encoding, err, tc.wantErr)
			continue
		}
		if err == nil && td.SpanCount() != tc.wantSpans {
			t.Errorf("case %d: %d spans, want %d", i, td.SpanCount(), tc.wantSpans)
		}
	}
	d, _ := New(config.EncodingOTLPProto)
	if _, err := decodeOne(t, d, nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty message: %v, want ErrEmpty", err)
	}
	if _, err := New("avro"); err == nil {
		t.Error("an unknown encoding has a decoder")
	}
}

// TestDecodersCountWhatGoesToTheLibrary: a decoder with a fast path counts the messages
// it leaves to the library — a shape it does not take, a malformed message — and not the
// others; the Zipkin decoders count every message, otlp_proto's none.
func TestDecodersCountWhatGoesToTheLibrary(t *testing.T) {
	plainJaeger, _ := spangen.New(1).JaegerSpan(1).Marshal()
	var jsonpbSpan bytes.Buffer
	if err := (&jsonpb.Marshaler{}).Marshal(&jsonpbSpan, spangen.New(1).JaegerSpan(1)); err != nil {
		t.Fatal(err)
	}
	otlpJSON, err := (&ptrace.JSONMarshaler{}).MarshalTraces(twoServiceTrace())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		encoding                string
		plain, other, malformed []byte
	}{
		{config.EncodingJaegerProto, plainJaeger, []byte{0x0a, 0x00}, []byte{0xff}},
		{config.EncodingJaegerJSON, jsonpbSpan.Bytes(),
			[]byte(`{"trace_id":"AAAAAAAAAAEAAAAAAAAAAg==","spanId":"AAAAAAAAAAM="}`), []byte(`{"traceId":`)},
		// Transcoded, then left by the protobuf reader to jaeger-idl, which refuses it, and
		// then to jsonpb: one message left to the libraries.
		{config.EncodingJaegerJSON, jsonpbSpan.Bytes(),
			[]byte(`{"trace_id":"AAAAAAAAAAEAAAAAAAAAAg==","spanId":"AAAAAAAAAAM="}`), []byte(`{"traceId":"AAAA","spanId":"AAAAAAAAAAM="}`)},
		{config.EncodingOTLPJSON, otlpJSON, bytes.Replace(otlpJSON, []byte(`{"resourceSpans"`), []byte(`{"x":1,"resourceSpans"`), 1), []byte(`[`)},
	} {
		d, err := New(tc.encoding)
		if err != nil {
			t.Fatal(err)
		}
		count := LibraryDecodes(d)
		var b otlpwire.Batch
		for i, data := range [][]byte{tc.plain, tc.other, tc.malformed} {
			_, _ = d.Decode(&b, data)
			if got, want := count(), uint64(i); got != want {
				t.Errorf("%s: %d messages left to the library after %d, want %d", tc.encoding, got, i+1, want)
			}
		}
	}
	otlpProto, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(twoServiceTrace())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		encoding string
		messages [][]byte
		want     uint64
	}{
		{config.EncodingZipkinJSON, [][]byte{[]byte(`[{"traceId":"0000000000000001","id":"0000000000000002","name":"a"}]`), []byte(`[`)}, 2},
		{config.EncodingZipkinThrift, [][]byte{{0xff}}, 1},
		{config.EncodingOTLPProto, [][]byte{otlpProto, {0xff}}, 0},
	} {
		d, err := New(tc.encoding)
		if err != nil {
			t.Fatal(err)
		}
		var b otlpwire.Batch
		for _, data := range tc.messages {
			_, _ = d.Decode(&b, data)
		}
		if got := LibraryDecodes(d)(); got != tc.want {
			t.Errorf("%s: %d of %d messages counted as the library's, want %d", tc.encoding, got, len(tc.messages), tc.want)
		}
	}
}
