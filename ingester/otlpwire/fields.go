package otlpwire

import "google.golang.org/protobuf/encoding/protowire"

// Field numbers of the OTLP trace messages (opentelemetry/proto/trace/v1/trace.proto,
// common/v1/common.proto, resource/v1/resource.proto), for code that encodes them.
const (
	requestResourceSpans = 1

	resourceSpansResource, resourceSpansScopeSpans, resourceSpansSchemaURL = 1, 2, 3
	resourceSpansDeprecatedScopeSpans                                      = 1000

	scopeSpansScope, scopeSpansSpans, scopeSpansSchemaURL = 1, 2, 3

	ResourceAttributes = 1

	ScopeName, ScopeVersion = 1, 2

	SpanTraceID, SpanSpanID, SpanTraceState, SpanParentSpanID, SpanName = 1, 2, 3, 4, 5
	SpanKind, SpanStartTime, SpanEndTime, SpanAttributes, SpanEvents    = 6, 7, 8, 9, 11
	SpanLinks, SpanStatus, SpanFlags                                    = 13, 15, 16
	EventTime, EventName, EventAttributes                               = 1, 2, 3
	LinkTraceID, LinkSpanID, LinkAttributes                             = 1, 2, 4
	StatusMessage, StatusCode                                           = 2, 3
	KeyValueKey, KeyValueValue                                          = 1, 2
	ValueString, ValueBool, ValueInt, ValueDouble, ValueBytes           = 1, 2, 3, 4, 7
)

// OpenSpan appends the tag of a Span entry of ScopeSpans and room for its length, and
// returns where the span's body starts; CloseField finishes it.
func OpenSpan(b []byte) ([]byte, int) { return OpenField(b, scopeSpansSpans) }

// OpenField appends the tag of length-delimited field num and room for its length, and
// returns where the body starts. Bodies are appended after it; CloseField writes the length.
func OpenField(b []byte, num protowire.Number) ([]byte, int) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = append(b, 0, 0)
	return b, len(b)
}

// CloseField writes the length of the field opened at body, moving the body when its
// length does not take the two bytes reserved for it.
func CloseField(b []byte, body int) []byte {
	n := len(b) - body
	size := protowire.SizeVarint(uint64(n))
	switch {
	case size == 2:
		b[body-2], b[body-1] = byte(n)|0x80, byte(n>>7)
		return b
	case size < 2: // shorter: move the body one byte back
		copy(b[body-1:], b[body:])
		b = b[:len(b)-1]
	default: // longer: make room
		b = append(b, make([]byte, size-2)...)
		copy(b[body-2+size:], b[body:body+n])
	}
	protowire.AppendVarint(b[:body-2], uint64(n))
	return b
}
