package decode

import (
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/zipkin/zipkinv2"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
)

// fuzzDecoder checks that a decoder never panics on arbitrary bytes and that whatever it
// accepts is usable traces. Run one with: go test -fuzz=FuzzZipkinJSON ./ingester/decode
//
// Each target's seed corpus is its f.Add seeds plus testdata/fuzz/<target>: messages of the
// shared test traces as each producer writes them (seed-*), and any input fuzzing found
// failing (kept as a regression). Plain `go test` runs them all.
func fuzzDecoder(f *testing.F, encoding string, seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	d, err := New(encoding)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		td, err := decodeOne(t, d, data)
		if err == nil {
			_ = td.SpanCount()
		}
	})
}

func FuzzOTLPProto(f *testing.F) {
	data, _ := (&ptrace.ProtoMarshaler{}).MarshalTraces(twoServiceTrace())
	fuzzDecoder(f, config.EncodingOTLPProto, data)
}

// FuzzOTLPJSON is in otlpjson_test.go and FuzzJaegerJSON in jaegerfast_test.go: they also
// hold the fast paths to the library.

func FuzzZipkinJSON(f *testing.F) {
	data, _ := zipkinv2.NewJSONTracesMarshaler().MarshalTraces(twoServiceTrace())
	fuzzDecoder(f, config.EncodingZipkinJSON, data)
}

func FuzzZipkinProto(f *testing.F) {
	data, _ := zipkinv2.NewProtobufTracesMarshaler().MarshalTraces(twoServiceTrace())
	fuzzDecoder(f, config.EncodingZipkinProto, data)
}

func FuzzZipkinThrift(f *testing.F) {
	fuzzDecoder(f, config.EncodingZipkinThrift, []byte{0x0c, 0, 0, 0, 1, 0x0a, 0, 1, 0, 0, 0, 0, 0, 0, 0, 42, 0})
}
