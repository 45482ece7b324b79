package decode

import (
	"bytes"
	"fmt"

	"github.com/gogo/protobuf/jsonpb"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	jaegertranslator "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/jaeger"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/otlpwire"
)

// jaegerProto decodes one Jaeger model.Span in protobuf, as the Jaeger collector's Kafka
// writer produces it (the span carries its Process), and converts it to pdata with the
// OpenTelemetry Collector's Jaeger translator.
type jaegerProto struct{}

func (d jaegerProto) Decode(b *otlpwire.Batch, data []byte) (int, error) {
	td, err := d.traces(data)
	if err != nil {
		return 0, err
	}
	return appendTraces(b, td)
}

func (jaegerProto) traces(data []byte) (ptrace.Traces, error) {
	if len(data) == 0 {
		return ptrace.Traces{}, ErrEmpty
	}
	var span model.Span
	if err := span.Unmarshal(data); err != nil {
		return ptrace.Traces{}, fmt.Errorf("not jaeger_proto: %w", err)
	}
	// The translator needs a process; a span without one still has a service to attach
	// to, an unnamed one, rather than failing.
	process := span.Process
	if process == nil {
		process = &model.Process{}
	}
	return jaegertranslator.ProtoToTraces([]*model.Batch{{Spans: []*model.Span{&span}, Process: process}})
}

// jaegerJSON decodes one Jaeger model.Span in protobuf-JSON, as the Jaeger collector's
// Kafka writer produces with encoding json.
type jaegerJSON struct{}

func (d jaegerJSON) Decode(b *otlpwire.Batch, data []byte) (int, error) {
	td, err := d.traces(data)
	if err != nil {
		return 0, err
	}
	return appendTraces(b, td)
}

func (jaegerJSON) traces(data []byte) (ptrace.Traces, error) {
	if len(data) == 0 {
		return ptrace.Traces{}, ErrEmpty
	}
	var span model.Span
	if err := jsonpb.Unmarshal(bytes.NewReader(data), &span); err != nil {
		return ptrace.Traces{}, fmt.Errorf("not jaeger_json: %w", err)
	}
	process := span.Process
	if process == nil {
		process = &model.Process{}
	}
	return jaegertranslator.ProtoToTraces([]*model.Batch{{Spans: []*model.Span{&span}, Process: process}})
}
