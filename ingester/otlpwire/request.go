// Package otlpwire holds spans as OpenTelemetry's OTLP protobuf wire bytes, the ingester's
// internal representation: decoders append encoded ResourceSpans to a Batch, and writers
// receive the Batch's bytes, a valid ExportTraceServiceRequest, to send as they are.
// pdata is the reference the bytes are held to, and what writers that need structure use.
package otlpwire

import (
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/encoding/protowire"
)

// Request is the spans of a write: an encoded ExportTraceServiceRequest (the same message
// as TracesData) and the number of spans in it.
type Request struct {
	// Pieces are the encoded request in order: their concatenation is the request. They
	// are parts of the messages the spans came in (otlp_proto's ResourceSpans are sent
	// where they arrived, not copied) and of what the batch encoded itself. They belong to
	// the caller of Write and must not be kept or changed after Write returns.
	Pieces [][]byte
	// Spans counts the spans in the request.
	Spans int
}

// Len is the size of the encoded request.
func (r Request) Len() int {
	n := 0
	for _, p := range r.Pieces {
		n += len(p)
	}
	return n
}

// AppendTo appends the encoded request to dst, for writers that need it in one piece.
func (r Request) AppendTo(dst []byte) []byte {
	if len(r.Pieces) > 1 {
		dst = growFor(dst, r.Len())
	}
	for _, p := range r.Pieces {
		dst = append(dst, p...)
	}
	return dst
}

// growFor returns dst with room for n more bytes.
func growFor(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	grown := make([]byte, len(dst), len(dst)+n)
	copy(grown, dst)
	return grown
}

// Traces decodes the request into pdata, for writers that need its structure, as an OTLP
// receiver does (spans under the deprecated instrumentation_library_spans included).
func (r Request) Traces() (ptrace.Traces, error) {
	if len(r.Pieces) == 1 {
		return decodeRequest(r.Pieces[0])
	}
	return decodeRequest(r.AppendTo(nil))
}

func decodeRequest(data []byte) (ptrace.Traces, error) {
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(data); err != nil {
		return ptrace.Traces{}, err
	}
	return req.Traces(), nil
}

// RequestOf encodes traces as a Request, for tests and the few places that hold pdata: a
// piece for each ResourceSpans, as the request of a delivery of many messages comes.
func RequestOf(td ptrace.Traces) Request {
	var m ptrace.ProtoMarshaler
	data, err := m.MarshalTraces(td)
	if err != nil {
		panic(err) // pdata marshals every value it can hold
	}
	var pieces [][]byte
	for pos := 0; pos < len(data); {
		_, _, n := protowire.ConsumeField(data[pos:])
		if n < 0 {
			panic(protowire.ParseError(n))
		}
		pieces = append(pieces, data[pos:pos+n:pos+n])
		pos += n
	}
	return Request{Pieces: pieces, Spans: td.SpanCount()}
}
