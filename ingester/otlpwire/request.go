// Package otlpwire holds spans as OpenTelemetry's OTLP protobuf wire bytes, the ingester's
// internal representation: decoders append encoded ResourceSpans to a Batch, and writers
// receive the Batch's bytes, a valid ExportTraceServiceRequest, to send as they are.
// pdata is the reference the bytes are held to, and what writers that need structure use.
package otlpwire

import (
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// Request is the spans of a write: an encoded ExportTraceServiceRequest (the same message
// as TracesData) and the number of spans in it.
type Request struct {
	// Bytes is the encoded request. It belongs to the caller of Write and must not be kept
	// after Write returns.
	Bytes []byte
	// Spans counts the spans in Bytes.
	Spans int
}

// Traces decodes the request into pdata, for writers that need its structure, as an OTLP
// receiver does (spans under the deprecated instrumentation_library_spans included).
func (r Request) Traces() (ptrace.Traces, error) {
	return decodeRequest(r.Bytes)
}

func decodeRequest(data []byte) (ptrace.Traces, error) {
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(data); err != nil {
		return ptrace.Traces{}, err
	}
	return req.Traces(), nil
}

// RequestOf encodes traces as a Request, for tests and the few places that hold pdata.
func RequestOf(td ptrace.Traces) Request {
	var m ptrace.ProtoMarshaler
	data, err := m.MarshalTraces(td)
	if err != nil {
		panic(err) // pdata marshals every value it can hold
	}
	return Request{Bytes: data, Spans: td.SpanCount()}
}
