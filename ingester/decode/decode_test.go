package decode

import (
	"errors"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
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
