// Package decode turns Kafka message bytes in the formats tracing systems write into
// OpenTelemetry pdata traces, the representation every writer consumes.
package decode

import (
	"errors"
	"fmt"

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
		return otlp{unmarshaler: &ptrace.ProtoUnmarshaler{}, name: encoding}, nil
	case config.EncodingOTLPJSON:
		return otlp{unmarshaler: &ptrace.JSONUnmarshaler{}, name: encoding}, nil
	case config.EncodingJaegerProto:
		return newJaegerFast(), nil
	default:
		return nil, fmt.Errorf("unsupported encoding %q", encoding)
	}
}

// otlp decodes an OTLP ExportTraceServiceRequest (the same message as TracesData).
type otlp struct {
	unmarshaler ptrace.Unmarshaler
	name        string
}

func (d otlp) Decode(data []byte) (ptrace.Traces, error) {
	if len(data) == 0 {
		return ptrace.Traces{}, ErrEmpty
	}
	traces, err := d.unmarshaler.UnmarshalTraces(data)
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("not %s: %w", d.name, err)
	}
	return traces, nil
}
