package decode

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"math"
	"strconv"
	"sync/atomic"
	"unicode/utf16"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/spanflow/spanflow/ingester/otlpwire"
)

// otlpJSONFast reads otlp_json by transcoding the JSON into the protobuf of the same
// TracesData, which the batch then takes as it takes otlp_proto: the validating walk, the
// resource spans merged by resource. The library path (pdata's JSON unmarshaler, then its
// marshaler) spends most of its time building and then serializing pdata objects, a
// hundred allocations a span. JSON the transcoder does not read exactly as pdata does —
// nulls, keys unknown, repeated or escaped, string escapes beyond the usual ones, quoted
// doubles, the deprecated and dictionary fields — goes to the library path, and so does
// every error, so that errors are the library's. TestOTLPJSONFastMatchesLibrary and
// FuzzOTLPJSON hold the two paths to the same spans under the same resources and scopes.
type otlpJSONFast struct {
	library   library
	fallbacks atomic.Uint64
}

// LibraryDecodes implements LibraryCounter.
func (d *otlpJSONFast) LibraryDecodes() uint64 { return d.fallbacks.Load() }

func (d *otlpJSONFast) Decode(b *otlpwire.Batch, data []byte) (int, error) {
	if len(data) == 0 {
		return 0, ErrEmpty
	}
	// The batch keeps slices of what it is given: the transcoded bytes go where it keeps
	// them. They take less room than the JSON (its keys, quotes and hex, its numbers in
	// decimal); were they ever more, the transcoder's appends would move them elsewhere.
	t := jsonTranscoder{in: data, out: b.Scratch(len(data))}
	if t.tracesData() {
		if n, err := b.AppendValidated(t.out); err == nil {
			b.Keep(len(t.out))
			return n, nil
		}
	}
	d.fallbacks.Add(1)
	return d.library.Decode(b, data)
}

// maxValueDepth is how deep the transcoder nests values: a third of pdata's limit on
// KeyValues, AnyValues and the lists between them, which a level of key-value lists takes
// three of (an array two).
const maxValueDepth = 32

// OTLP's field numbers the transcoder writes beyond those otlpwire names.
const (
	otlpResourceDropped                                = 2
	otlpScopeAttributes, otlpScopeDropped              = 3, 4
	otlpSpanDroppedAttributes, otlpSpanDroppedEvents   = 10, 12
	otlpSpanDroppedLinks                               = 14
	otlpEventDropped                                   = 4
	otlpLinkTraceState, otlpLinkDropped, otlpLinkFlags = 3, 5, 6
	otlpValueArray, otlpValueKvlist                    = 5, 6
	otlpListValues                                     = 1
)

// The names of SpanKind and StatusCode, which pdata reads besides their numbers.
var (
	spanKinds = map[string]uint64{"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
		"SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}
	statusCodes = map[string]uint64{"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
)

func (t *jsonTranscoder) tracesData() bool {
	ok := t.fields(func(key string) protowire.Number {
		if key == "resourceSpans" || key == "resource_spans" {
			return 1
		}
		return 0
	}, func(protowire.Number) bool { return t.list(1, t.resourceSpans) })
	t.skipSpace()
	return ok && t.pos == len(t.in)
}

func (t *jsonTranscoder) resourceSpans() bool {
	return t.schemaScoped("resource", t.resource, "scopeSpans", "scope_spans", t.scopeSpans)
}

func (t *jsonTranscoder) resource() bool {
	return t.fields(func(key string) protowire.Number {
		switch key {
		case "attributes":
			return 1
		case "droppedAttributesCount", "dropped_attributes_count":
			return otlpResourceDropped
		}
		return 0 // entityRefs among them
	}, func(field protowire.Number) bool {
		if field == 1 {
			return t.attributes(1)
		}
		return t.unsignedField(field, 32, protowire.VarintType)
	})
}

func (t *jsonTranscoder) scopeSpans() bool {
	return t.schemaScoped("scope", t.scope, "spans", "spans", t.otlpSpan)
}

// schemaScoped reads ResourceSpans or ScopeSpans, which have one shape: field 1 a message
// (key one, written by first), field 2 a list (key list, also spelt listSnake, each
// element written by element), field 3 the schema URL.
func (t *jsonTranscoder) schemaScoped(one string, first func() bool, list, listSnake string, element func() bool) bool {
	return t.fields(func(key string) protowire.Number {
		switch key {
		case one:
			return 1
		case list, listSnake:
			return 2
		case "schemaUrl", "schema_url":
			return 3
		}
		return 0
	}, func(field protowire.Number) bool {
		switch field {
		case 1:
			return t.submessage(1, first)
		case 2:
			return t.list(2, element)
		default:
			return t.otlpString(3, false)
		}
	})
}

func (t *jsonTranscoder) scope() bool {
	return t.fields(func(key string) protowire.Number {
		switch key {
		case "name":
			return 1
		case "version":
			return 2
		case "attributes":
			return otlpScopeAttributes
		case "droppedAttributesCount", "dropped_attributes_count":
			return otlpScopeDropped
		}
		return 0
	}, func(field protowire.Number) bool {
		switch field {
		case otlpScopeAttributes:
			return t.attributes(field)
		case otlpScopeDropped:
			return t.unsignedField(field, 32, protowire.VarintType)
		default:
			return t.otlpString(field, false)
		}
	})
}

func spanField(key string) protowire.Number {
	switch key {
	case "traceId", "trace_id":
		return otlpwire.SpanTraceID
	case "spanId", "span_id":
		return otlpwire.SpanSpanID
	case "traceState", "trace_state":
		return otlpwire.SpanTraceState
	case "parentSpanId", "parent_span_id":
		return otlpwire.SpanParentSpanID
	case "flags":
		return otlpwire.SpanFlags
	case "name":
		return otlpwire.SpanName
	case "kind":
		return otlpwire.SpanKind
	case "startTimeUnixNano", "start_time_unix_nano":
		return otlpwire.SpanStartTime
	case "endTimeUnixNano", "end_time_unix_nano":
		return otlpwire.SpanEndTime
	case "attributes":
		return otlpwire.SpanAttributes
	case "droppedAttributesCount", "dropped_attributes_count":
		return otlpSpanDroppedAttributes
	case "events":
		return otlpwire.SpanEvents
	case "droppedEventsCount", "dropped_events_count":
		return otlpSpanDroppedEvents
	case "links":
		return otlpwire.SpanLinks
	case "droppedLinksCount", "dropped_links_count":
		return otlpSpanDroppedLinks
	case "status":
		return otlpwire.SpanStatus
	}
	return 0
}

func (t *jsonTranscoder) otlpSpan() bool {
	return t.fields(spanField, func(field protowire.Number) bool {
		switch field {
		case otlpwire.SpanTraceID:
			return t.hexID(field, 16)
		case otlpwire.SpanSpanID, otlpwire.SpanParentSpanID:
			return t.hexID(field, 8)
		case otlpwire.SpanTraceState, otlpwire.SpanName:
			return t.otlpString(field, false)
		case otlpwire.SpanFlags:
			return t.unsignedField(field, 32, protowire.Fixed32Type)
		case otlpwire.SpanKind:
			return t.otlpEnum(field, spanKinds)
		case otlpwire.SpanStartTime, otlpwire.SpanEndTime:
			return t.unsignedField(field, 64, protowire.Fixed64Type)
		case otlpwire.SpanAttributes:
			return t.attributes(field)
		case otlpwire.SpanEvents:
			return t.list(field, t.event)
		case otlpwire.SpanLinks:
			return t.list(field, t.link)
		case otlpwire.SpanStatus:
			return t.submessage(field, t.status)
		default: // the dropped counts
			return t.unsignedField(field, 32, protowire.VarintType)
		}
	})
}

func (t *jsonTranscoder) event() bool {
	return t.fields(func(key string) protowire.Number {
		switch key {
		case "timeUnixNano", "time_unix_nano":
			return otlpwire.EventTime
		case "name":
			return otlpwire.EventName
		case "attributes":
			return otlpwire.EventAttributes
		case "droppedAttributesCount", "dropped_attributes_count":
			return otlpEventDropped
		}
		return 0
	}, func(field protowire.Number) bool {
		switch field {
		case otlpwire.EventTime:
			return t.unsignedField(field, 64, protowire.Fixed64Type)
		case otlpwire.EventName:
			return t.otlpString(field, false)
		case otlpwire.EventAttributes:
			return t.attributes(field)
		default:
			return t.unsignedField(field, 32, protowire.VarintType)
		}
	})
}

func (t *jsonTranscoder) link() bool {
	return t.fields(func(key string) protowire.Number {
		switch key {
		case "traceId", "trace_id":
			return otlpwire.LinkTraceID
		case "spanId", "span_id":
			return otlpwire.LinkSpanID
		case "traceState", "trace_state":
			return otlpLinkTraceState
		case "attributes":
			return otlpwire.LinkAttributes
		case "droppedAttributesCount", "dropped_attributes_count":
			return otlpLinkDropped
		case "flags":
			return otlpLinkFlags
		}
		return 0
	}, func(field protowire.Number) bool {
		switch field {
		case otlpwire.LinkTraceID:
			return t.hexID(field, 16)
		case otlpwire.LinkSpanID:
			return t.hexID(field, 8)
		case otlpLinkTraceState:
			return t.otlpString(field, false)
		case otlpwire.LinkAttributes:
			return t.attributes(field)
		case otlpLinkFlags:
			return t.unsignedField(field, 32, protowire.Fixed32Type)
		default:
			return t.unsignedField(field, 32, protowire.VarintType)
		}
	})
}

func (t *jsonTranscoder) status() bool {
	return t.fields(func(key string) protowire.Number {
		switch key {
		case "message":
			return otlpwire.StatusMessage
		case "code":
			return otlpwire.StatusCode
		}
		return 0
	}, func(field protowire.Number) bool {
		if field == otlpwire.StatusMessage {
			return t.otlpString(field, false)
		}
		return t.otlpEnum(field, statusCodes)
	})
}

// attributes reads a list of KeyValues as field. One in the shape pdata writes,
// {"key":"k","value":{"stringValue":"v"}} (or an int, bool or double value), is read in
// one pass, without the general reader's calls a token: attributes are most of a span.
func (t *jsonTranscoder) attributes(field protowire.Number) bool {
	return t.listPlainFirst(field, t.plainKeyValue, t.otlpKeyValue)
}

// plainKeyValue appends a KeyValue in the shape pdata writes as field, or reports false
// for any other (having read some of it: the caller goes back).
func (t *jsonTranscoder) plainKeyValue(field protowire.Number) bool {
	t.skipSpace()
	in := t.in[t.pos:]
	const keyStart, valueStart = `{"key":"`, `","value":{"`
	if len(in) < len(keyStart) || string(in[:len(keyStart)]) != keyStart {
		return false
	}
	i := len(keyStart)
	keyEnd := plainStringEnd(in, i)
	if keyEnd < 0 || len(in)-keyEnd < len(valueStart) || string(in[keyEnd:keyEnd+len(valueStart)]) != valueStart {
		return false
	}
	key := in[i:keyEnd]
	i = keyEnd + len(valueStart)
	var (
		valueField protowire.Number
		text       []byte // a string's bytes
		number     uint64 // an int's, a bool's or a double's bits
	)
	rest := in[i:]
	switch {
	case hasPrefix(rest, `stringValue":"`):
		i += len(`stringValue":"`)
		end := plainStringEnd(in, i)
		if end < 0 {
			return false
		}
		valueField, text, i = otlpwire.ValueString, in[i:end], end+1
	case hasPrefix(rest, `intValue":"`):
		i += len(`intValue":"`)
		end := plainStringEnd(in, i)
		if end < 0 {
			return false
		}
		v, err := strconv.ParseInt(string(in[i:end]), 10, 64)
		if err != nil {
			return false
		}
		valueField, number, i = otlpwire.ValueInt, uint64(v), end+1
	case hasPrefix(rest, `boolValue":true`):
		valueField, number, i = otlpwire.ValueBool, 1, i+len(`boolValue":true`)
	case hasPrefix(rest, `boolValue":false`):
		valueField, i = otlpwire.ValueBool, i+len(`boolValue":false`)
	case hasPrefix(rest, `doubleValue":`):
		i += len(`doubleValue":`)
		end := jsonNumberEnd(in, i)
		if end < 0 {
			return false
		}
		v, err := strconv.ParseFloat(string(in[i:end]), 64)
		if err != nil {
			return false
		}
		valueField, number, i = otlpwire.ValueDouble, math.Float64bits(v), end
	default:
		return false
	}
	if !hasPrefix(in[i:], "}}") {
		return false
	}
	t.pos += i + 2

	var valueSize int
	switch valueField {
	case otlpwire.ValueString:
		valueSize = 1 + protowire.SizeBytes(len(text))
	case otlpwire.ValueDouble:
		valueSize = 9
	default:
		valueSize = 1 + protowire.SizeVarint(number)
	}
	size := 1 + protowire.SizeBytes(valueSize)
	if len(key) > 0 { // pdata writes no empty key
		size += 1 + protowire.SizeBytes(len(key))
	}
	t.out = appendTag(t.out, field, protowire.BytesType)
	t.out = appendVarint(t.out, uint64(size))
	if len(key) > 0 {
		t.out = appendTag(t.out, otlpwire.KeyValueKey, protowire.BytesType)
		t.out = appendLenBytes(t.out, key)
	}
	t.out = appendTag(t.out, otlpwire.KeyValueValue, protowire.BytesType)
	t.out = appendVarint(t.out, uint64(valueSize))
	switch valueField {
	case otlpwire.ValueString:
		t.out = appendTag(t.out, valueField, protowire.BytesType)
		t.out = appendLenBytes(t.out, text)
	case otlpwire.ValueDouble:
		t.out = appendTag(t.out, valueField, protowire.Fixed64Type)
		t.out = protowire.AppendFixed64(t.out, number)
	default:
		t.out = appendTag(t.out, valueField, protowire.VarintType)
		t.out = appendVarint(t.out, number)
	}
	return true
}

func (t *jsonTranscoder) otlpKeyValue() bool {
	return t.fields(func(key string) protowire.Number {
		switch key {
		case "key":
			return otlpwire.KeyValueKey
		case "value":
			return otlpwire.KeyValueValue
		}
		return 0 // keyStrindex among them
	}, func(field protowire.Number) bool {
		if field == otlpwire.KeyValueKey {
			return t.otlpString(field, false)
		}
		return t.submessage(field, t.anyValue)
	})
}

func anyValueField(key string) protowire.Number {
	switch key {
	case "stringValue", "string_value":
		return otlpwire.ValueString
	case "boolValue", "bool_value":
		return otlpwire.ValueBool
	case "intValue", "int_value":
		return otlpwire.ValueInt
	case "doubleValue", "double_value":
		return otlpwire.ValueDouble
	case "arrayValue", "array_value":
		return otlpValueArray
	case "kvlistValue", "kvlist_value":
		return otlpValueKvlist
	case "bytesValue", "bytes_value":
		return otlpwire.ValueBytes
	}
	return 0 // stringValueStrindex among them
}

// anyValue reads an AnyValue. Its member is written even when it holds its type's zero
// value, which still says the type; of several members, pdata keeps the last, as a reader
// of the protobuf does.
func (t *jsonTranscoder) anyValue() bool {
	// Deeper values than pdata's protobuf reader takes go to the library (whose reader
	// refuses them too): each level moves what it holds once more.
	if t.depth++; t.depth > maxValueDepth {
		return false
	}
	defer func() { t.depth-- }()
	return t.fields(anyValueField, func(field protowire.Number) bool {
		switch field {
		case otlpwire.ValueString:
			return t.otlpString(field, true)
		case otlpwire.ValueBool:
			return t.boolField(field)
		case otlpwire.ValueInt:
			return t.int64Varint(field)
		case otlpwire.ValueDouble:
			return t.float64Field(field)
		case otlpValueArray:
			return t.submessage(field, func() bool { return t.values(t.anyValue) })
		case otlpValueKvlist:
			return t.submessage(field, func() bool { return t.values(t.otlpKeyValue) })
		default:
			return t.base64Bytes(field)
		}
	})
}

// values reads ArrayValue or KeyValueList: {"values": [...]}, each element read by element.
func (t *jsonTranscoder) values(element func() bool) bool {
	return t.fields(func(key string) protowire.Number {
		if key == "values" {
			return otlpListValues
		}
		return 0
	}, func(field protowire.Number) bool { return t.list(field, element) })
}

// otlpString appends a string field, read as jsoniter reads it; an empty one only when
// always, as pdata leaves out empty strings but not an AnyValue's.
func (t *jsonTranscoder) otlpString(field protowire.Number, always bool) bool {
	s, ok := t.jsoniterString()
	if !ok {
		return false
	}
	if len(s) > 0 || always {
		t.out = appendTag(t.out, field, protowire.BytesType)
		t.out = appendLenBytes(t.out, s)
	}
	return true
}

// jsoniterString reads a string as jsoniter's ReadString does: the bytes between the
// quotes as they are (UTF-8 or not), escapes resolved. An escaped surrogate (jsoniter has
// rules of its own for pairs and strays) goes to the library.
func (t *jsonTranscoder) jsoniterString() ([]byte, bool) {
	raw, escaped, ok := t.scanString()
	if !ok || !escaped {
		return raw, ok
	}
	escape := bytes.IndexByte(raw, '\\')
	out := make([]byte, 0, len(raw))
	out = append(out, raw[:escape]...)
	for i := escape; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++ // rawString ends no string on a backslash: an escaped character follows
		switch raw[i] {
		case '"', '\\', '/':
			out = append(out, raw[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if i+4 >= len(raw) {
				return nil, false
			}
			r, err := strconv.ParseUint(string(raw[i+1:i+5]), 16, 16)
			if err != nil || utf16.IsSurrogate(rune(r)) {
				return nil, false
			}
			out = utf8.AppendRune(out, rune(r))
			i += 4
		default:
			return nil, false
		}
	}
	return out, true
}

// hexID appends an ID of size bytes written in hex, as pdata reads it; "" is the zero ID,
// which pdata writes as no ID.
func (t *jsonTranscoder) hexID(field protowire.Number, size int) bool {
	s, ok := t.plainString()
	if !ok || (len(s) != 0 && len(s) != 2*size) {
		return false
	}
	if len(s) == 0 {
		return true
	}
	var id [16]byte
	if _, err := hex.Decode(id[:size], s); err != nil {
		return false
	}
	t.out = appendTag(t.out, field, protowire.BytesType)
	t.out = appendLenBytes(t.out, id[:size])
	return true
}

// integer reads an integer as pdata does: a quoted decimal (strconv's syntax) or a bare JSON
// integer; signed allows a minus sign. It returns the digits to parse.
func (t *jsonTranscoder) integer(signed bool) ([]byte, bool) {
	t.skipSpace()
	if t.pos < len(t.in) && t.in[t.pos] == '"' {
		return t.plainString()
	}
	start := t.pos
	if signed && t.pos < len(t.in) && t.in[t.pos] == '-' {
		t.pos++
	}
	digits := t.pos
	for t.pos < len(t.in) && t.in[t.pos] >= '0' && t.in[t.pos] <= '9' {
		t.pos++
	}
	// jsoniter refuses a leading zero. A fraction or an exponent is not followed by what
	// closes a value: the caller leaves the message to the library.
	if n := t.pos - digits; n == 0 || (n > 1 && t.in[digits] == '0') {
		return nil, false
	}
	return t.in[start:t.pos], true
}

// unsignedField appends an unsigned integer of bits bits read as pdata reads one, as a
// field of wire type typ (the dropped counts a varint, times fixed64, flags fixed32); left
// out when zero, as pdata writes it.
func (t *jsonTranscoder) unsignedField(field protowire.Number, bits int, typ protowire.Type) bool {
	s, ok := t.integer(false)
	if !ok {
		return false
	}
	v, err := strconv.ParseUint(string(s), 10, bits)
	if err != nil {
		return false
	}
	if v == 0 {
		return true
	}
	t.out = appendTag(t.out, field, typ)
	switch typ {
	case protowire.Fixed64Type:
		t.out = protowire.AppendFixed64(t.out, v)
	case protowire.Fixed32Type:
		t.out = protowire.AppendFixed32(t.out, uint32(v))
	default:
		t.out = appendVarint(t.out, v)
	}
	return true
}

// int64Varint appends an int64 field, zero included (an AnyValue's).
func (t *jsonTranscoder) int64Varint(field protowire.Number) bool {
	s, ok := t.integer(true)
	if !ok {
		return false
	}
	v, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil {
		return false
	}
	t.out = appendTag(t.out, field, protowire.VarintType)
	t.out = appendVarint(t.out, uint64(v))
	return true
}

// otlpEnum reads an enum by its number (bare) or its name (quoted), as pdata does.
func (t *jsonTranscoder) otlpEnum(field protowire.Number, names map[string]uint64) bool {
	t.skipSpace()
	var v int64
	if t.pos < len(t.in) && t.in[t.pos] == '"' {
		s, ok := t.plainString()
		if !ok {
			return false
		}
		n, ok := names[string(s)]
		if !ok {
			return false
		}
		v = int64(n)
	} else {
		s, ok := t.integer(true)
		if !ok {
			return false
		}
		var err error
		if v, err = strconv.ParseInt(string(s), 10, 32); err != nil {
			return false
		}
	}
	if v != 0 {
		t.out = appendTag(t.out, field, protowire.VarintType)
		t.out = appendVarint(t.out, uint64(v))
	}
	return true
}

// base64Bytes reads bytes as pdata does: standard base64 without escapes; "" is no bytes.
func (t *jsonTranscoder) base64Bytes(field protowire.Number) bool {
	s, ok := t.plainString()
	if !ok {
		return false
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(b, s)
	if err != nil {
		return false
	}
	t.out = appendTag(t.out, field, protowire.BytesType)
	t.out = appendLenBytes(t.out, b[:n])
	return true
}
