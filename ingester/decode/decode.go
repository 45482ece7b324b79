// Package decode turns Kafka message bytes in the formats tracing systems write into
// OpenTelemetry pdata traces, the representation every writer consumes.
package decode

import (
	"errors"
	"fmt"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/zipkin/zipkinv1"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/zipkin/zipkinv2"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
)

// Decoder turns one message's bytes into traces. The traces may share memory with data
// (strings are not copied), so data must not be modified after Decode; Kafka messages
// as kafka-go returns them are never modified.
type Decoder interface {
	Decode(data []byte) (ptrace.Traces, error)
}

// ErrEmpty is returned for a message with no bytes: no format encodes a span in zero bytes.
var ErrEmpty = errors.New("empty message")

// New returns the decoder of an encoding named in the config.
func New(encoding string) (Decoder, error) {
	switch encoding {
	case config.EncodingOTLPProto:
		return library{unmarshaler: &ptrace.ProtoUnmarshaler{}, name: encoding}, nil
	case config.EncodingOTLPJSON:
		return library{unmarshaler: &ptrace.JSONUnmarshaler{}, name: encoding}, nil
	case config.EncodingJaegerProto:
		return newJaegerFast(), nil
	case config.EncodingJaegerJSON:
		return newJaegerJSONFast(), nil
	case config.EncodingZipkinJSON:
		return library{unmarshaler: zipkinv2.NewJSONTracesUnmarshaler(false), name: encoding}, nil
	case config.EncodingZipkinProto:
		return library{unmarshaler: zipkinv2.NewProtobufTracesUnmarshaler(false, false), name: encoding}, nil
	case config.EncodingZipkinThrift:
		return library{unmarshaler: zipkinv1.NewThriftTracesUnmarshaler(), name: encoding}, nil
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

func (d library) Decode(data []byte) (traces ptrace.Traces, err error) {
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
