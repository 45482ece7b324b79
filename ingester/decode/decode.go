// Package decode turns Kafka message bytes in the formats tracing systems write into OTLP
// wire bytes (package otlpwire), the representation every writer consumes: otlp_proto is
// referred to after a validating walk, Jaeger's formats are transcoded wire to wire, the other
// formats go through their libraries' pdata decoders and are marshalled.
package decode

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/zipkin/zipkinv1"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/zipkin/zipkinv2"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/otlpwire"
)

// Decoder adds the spans of one message to a batch and returns how many it added. On an
// error the batch is as it was.
type Decoder interface {
	Decode(b *otlpwire.Batch, data []byte) (spans int, err error)
}

// LibraryCounter is a decoder that counts the messages it decoded through its encoding's
// library (pdata, the OpenTelemetry translators) rather than reading them itself.
type LibraryCounter interface {
	// LibraryDecodes is how many messages went to the library: every one of the Zipkin
	// encodings; of those with a fast path (jaeger_proto, jaeger_json, otlp_json), the
	// shapes it does not read exactly as the library would and malformed ones (whose
	// error is the library's). Many more than decode errors there mean a producer writes
	// a shape the fast path does not take, at several times its cost.
	LibraryDecodes() uint64
}

// LibraryDecodes returns what counts d's messages decoded through its encoding's library:
// none for a decoder that never uses one (otlp_proto).
func LibraryDecodes(d Decoder) func() uint64 {
	if c, ok := d.(LibraryCounter); ok {
		return c.LibraryDecodes
	}
	return func() uint64 { return 0 }
}

// ErrEmpty is returned for a message with no bytes: no format encodes a span in zero bytes.
var ErrEmpty = errors.New("empty message")

// New returns the decoder of an encoding named in the config.
func New(encoding string) (Decoder, error) {
	switch encoding {
	case config.EncodingOTLPProto:
		return otlpProto{}, nil
	case config.EncodingOTLPJSON:
		return &otlpJSONFast{library: library{unmarshaler: &ptrace.JSONUnmarshaler{}, name: encoding}}, nil
	case config.EncodingJaegerProto:
		return newJaegerFast(), nil
	case config.EncodingJaegerJSON:
		return newJaegerJSONFast(), nil
	case config.EncodingZipkinJSON:
		return &libraryOnly{library: library{unmarshaler: zipkinv2.NewJSONTracesUnmarshaler(false), name: encoding}}, nil
	case config.EncodingZipkinProto:
		return &libraryOnly{library: library{unmarshaler: zipkinv2.NewProtobufTracesUnmarshaler(false, false), name: encoding}}, nil
	case config.EncodingZipkinThrift:
		return &libraryOnly{library: library{unmarshaler: zipkinv1.NewThriftTracesUnmarshaler(), name: encoding}}, nil
	default:
		return nil, fmt.Errorf("unsupported encoding %q", encoding)
	}
}

// library decodes with a pdata unmarshaler from the OpenTelemetry Collector or its contrib
// translators: OTLP (ExportTraceServiceRequest, the same message as TracesData), Zipkin v2
// JSON and protobuf (ListOfSpans), Zipkin v1 Thrift (a list of spans).
type library struct {
	unmarshaler ptrace.Unmarshaler
	name        string
}

// libraryOnly is an encoding read only through its library (the Zipkin encodings), which
// counts its messages as LibraryCounter says.
type libraryOnly struct {
	library
	decodes atomic.Uint64
}

func (d *libraryOnly) Decode(b *otlpwire.Batch, data []byte) (int, error) {
	d.decodes.Add(1)
	return d.library.Decode(b, data)
}

// LibraryDecodes implements LibraryCounter.
func (d *libraryOnly) LibraryDecodes() uint64 { return d.decodes.Load() }

func (d library) Decode(b *otlpwire.Batch, data []byte) (int, error) {
	td, err := d.traces(data)
	if err != nil {
		return 0, err
	}
	return appendTraces(b, td)
}

func (d library) traces(data []byte) (traces ptrace.Traces, err error) {
	if len(data) == 0 {
		return ptrace.Traces{}, ErrEmpty
	}
	// A third-party decoder that panics on hostile bytes must cost one message, not the pod.
	defer func() {
		if r := recover(); r != nil {
			traces, err = ptrace.Traces{}, fmt.Errorf("not %s: the decoder failed: %v", d.name, r)
		}
	}()
	traces, err = d.unmarshaler.UnmarshalTraces(data)
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("not %s: %w", d.name, err)
	}
	return traces, nil
}

// appendTraces marshals traces a library decoded into b, their resource spans merged with
// those of the same resource as otlp_proto's are (a walk of what pdata wrote: a few
// percent of what the library took to decode it).
func appendTraces(b *otlpwire.Batch, td ptrace.Traces) (int, error) {
	data, err := marshaler.MarshalTraces(td)
	if err != nil {
		return 0, fmt.Errorf("encoding as OTLP: %w", err)
	}
	n, err := b.AppendValidated(data)
	if err != nil {
		return 0, fmt.Errorf("encoding as OTLP: pdata wrote what it does not read: %w", err)
	}
	return n, nil
}

var marshaler ptrace.ProtoMarshaler

// otlpProto is otlp_proto: an ExportTraceServiceRequest (the same message as TracesData),
// as the Collector's Kafka exporter writes it: its ResourceSpans are sent where they are after
// a validating walk.
type otlpProto struct{}

func (otlpProto) Decode(b *otlpwire.Batch, data []byte) (int, error) {
	if len(data) == 0 {
		return 0, ErrEmpty
	}
	n, err := b.AppendValidated(data)
	if err != nil {
		return 0, fmt.Errorf("not %s: %w", config.EncodingOTLPProto, err)
	}
	return n, nil
}
