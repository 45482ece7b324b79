package decode

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/spanflow/spanflow/ingester/otlpwire"
)

// jaegerJSONFast reads jaeger_json by transcoding the JSON into the protobuf encoding of
// the same model.Span, which the jaeger_proto fast path decodes: gogo's jsonpb, the
// library path, spends about 50 times longer on reflection. JSON the transcoder does not
// read exactly as jsonpb would — other spellings of field names, nulls, enum numbers,
// repeated keys, special floats, anything unusual — goes to the library path, and so does
// every error, so that errors are the library's. A differential test and a fuzz target
// hold the two paths to the same output.
type jaegerJSONFast struct {
	proto     *jaegerFast
	library   jaegerJSON
	fallbacks atomic.Uint64
}

// LibraryDecodes implements LibraryCounter: the messages left to jsonpb, or whose transcoded
// protobuf the jaeger_proto transcoder left to jaeger-idl.
func (d *jaegerJSONFast) LibraryDecodes() uint64 { return d.fallbacks.Load() }

func newJaegerJSONFast() *jaegerJSONFast { return &jaegerJSONFast{proto: newJaegerFast()} }

func (d *jaegerJSONFast) Decode(b *otlpwire.Batch, data []byte) (int, error) {
	if len(data) == 0 {
		return 0, ErrEmpty
	}
	// The protobuf is read and left at once (the jaeger_proto transcoder copies what it
	// keeps): room the batch lends again for the next message.
	t := jsonTranscoder{in: data, out: b.Scratch(len(data))}
	if wire, ok := t.span(); ok {
		n, library, err := d.proto.decode(b, wire)
		if err == nil {
			if library {
				d.fallbacks.Add(1)
			}
			return n, nil
		}
	}
	d.fallbacks.Add(1)
	return d.library.Decode(b, data)
}

// Field numbers of jaeger-idl's model.proto beyond those in jaegerwire.go, and of
// google.protobuf.Timestamp and Duration.
const (
	spanProcessID, spanWarnings = 11, 12
	wktSeconds, wktNanos        = 1, 2
)

func (t *jsonTranscoder) span() ([]byte, bool) {
	ok := t.members(spanFields, func(field protowire.Number) bool {
		switch field {
		case spanTraceID, spanSpanID:
			return t.id(field)
		case spanOperation, spanProcessID:
			return t.stringField(field)
		case spanReferences:
			return t.array(func() bool { return t.submessage(spanReferences, t.ref) })
		case spanFlags:
			return t.uint32Field(field)
		case spanStartTime:
			return t.submessage(field, t.timestamp)
		case spanDuration:
			return t.submessage(field, t.duration)
		case spanTags:
			return t.tags(spanTags)
		case spanLogs:
			return t.array(func() bool { return t.submessage(spanLogs, t.log) })
		case spanProcess:
			return t.submessage(field, t.process)
		default: // spanWarnings
			return t.array(func() bool { return t.stringField(spanWarnings) })
		}
	})
	t.skipSpace()
	return t.out, ok && t.pos == len(t.in)
}

// members reads an object whose keys are all among names (the exact spellings jsonpb
// writes), each at most once: another spelling, an unknown key or a repeated one is left
// to the library, as jsonpb would read the first two its own way, and keep only the last
// of a repeated key.
func (t *jsonTranscoder) members(names map[string]protowire.Number, read func(protowire.Number) bool) bool {
	return t.fields(func(key string) protowire.Number { return names[key] }, read)
}

// The names jsonpb writes for the enums; it also reads their numbers, which go to the
// library path here.
var (
	refTypes   = map[string]uint64{"CHILD_OF": 0, "FOLLOWS_FROM": 1}
	valueTypes = map[string]uint64{"STRING": vtString, "BOOL": vtBool, "INT64": vtInt64, "FLOAT64": vtFloat64, "BINARY": vtBinary}
)

// The JSON names of the fields of a span, a reference, a tag, a log and a process.
var (
	spanFields = map[string]protowire.Number{
		"traceId": spanTraceID, "spanId": spanSpanID, "operationName": spanOperation, "references": spanReferences,
		"flags": spanFlags, "startTime": spanStartTime, "duration": spanDuration, "tags": spanTags, "logs": spanLogs,
		"process": spanProcess, "processId": spanProcessID, "warnings": spanWarnings,
	}
	refFields = map[string]protowire.Number{"traceId": refTraceID, "spanId": refSpanID, "refType": refType}
	kvFields  = map[string]protowire.Number{"key": kvKey, "vType": kvType, "vStr": kvStr, "vBool": kvBool,
		"vInt64": kvInt64, "vFloat64": kvFloat64, "vBinary": kvBinary}
	logFieldNames     = map[string]protowire.Number{"timestamp": logTimestamp, "fields": logFields}
	processFieldNames = map[string]protowire.Number{"serviceName": processServiceName, "tags": processTags}
)

func (t *jsonTranscoder) ref() bool {
	return t.members(refFields, func(field protowire.Number) bool {
		if field == refType {
			return t.enum(field, refTypes)
		}
		return t.id(field)
	})
}

// tags reads a list of tags as field. A tag in the shape jsonpb writes — its key, its type
// unless a string, its value unless the type's zero, in that order, without escapes — is
// read in one pass; any other through the general reader.
func (t *jsonTranscoder) tags(field protowire.Number) bool {
	return t.listPlainFirst(field, t.plainTag, t.keyValue)
}

// plainTag appends a tag in the shape jsonpb writes as field, writing what the general
// reader would, or reports false for any other (having read some of it: the caller goes
// back).
func (t *jsonTranscoder) plainTag(field protowire.Number) bool {
	t.skipSpace()
	in := t.in[t.pos:]
	const keyStart, typeStart = `{"key":"`, `,"vType":"`
	if !hasPrefix(in, keyStart) {
		return false
	}
	i := len(keyStart)
	end := plainStringEnd(in, i)
	if end < 0 || !utf8.Valid(in[i:end]) {
		return false
	}
	key := in[i:end]
	i = end + 1
	vtype, typed := uint64(0), false
	if hasPrefix(in[i:], typeStart) {
		i += len(typeStart)
		end := plainStringEnd(in, i)
		if end < 0 {
			return false
		}
		v, ok := valueTypes[string(in[i:end])]
		if !ok {
			return false
		}
		vtype, typed, i = v, true, end+1
	}
	var (
		valueField protowire.Number
		text       []byte // a string's bytes
		number     uint64 // a bool's, an int's or a double's bits
	)
	rest := in[i:]
	switch {
	case hasPrefix(rest, `,"vStr":"`):
		i += len(`,"vStr":"`)
		end := plainStringEnd(in, i)
		if end < 0 || !utf8.Valid(in[i:end]) {
			return false
		}
		valueField, text, i = kvStr, in[i:end], end+1
	case hasPrefix(rest, `,"vBool":true`):
		valueField, number, i = kvBool, 1, i+len(`,"vBool":true`)
	case hasPrefix(rest, `,"vBool":false`):
		valueField, i = kvBool, i+len(`,"vBool":false`)
	case hasPrefix(rest, `,"vInt64":"`):
		i += len(`,"vInt64":"`)
		end := plainStringEnd(in, i)
		// jsonpb reads the quoted text as a JSON number, then as an int64.
		if end < 0 || jsonNumberEnd(in[:end], i) != end {
			return false
		}
		v, err := strconv.ParseInt(string(in[i:end]), 10, 64)
		if err != nil {
			return false
		}
		valueField, number, i = kvInt64, uint64(v), end+1
	case hasPrefix(rest, `,"vFloat64":`):
		i += len(`,"vFloat64":`)
		end := jsonNumberEnd(in, i)
		if end < 0 {
			return false
		}
		v, err := strconv.ParseFloat(string(in[i:end]), 64)
		if err != nil {
			return false
		}
		valueField, number, i = kvFloat64, math.Float64bits(v), end
	}
	if !hasPrefix(in[i:], "}") {
		return false
	}
	t.pos += i + 1

	var body int
	t.out, body = otlpwire.OpenField(t.out, field)
	t.out = appendTag(t.out, kvKey, protowire.BytesType)
	t.out = appendLenBytes(t.out, key)
	if typed {
		t.out = appendTag(t.out, kvType, protowire.VarintType)
		t.out = appendVarint(t.out, vtype)
	}
	switch valueField {
	case kvStr:
		t.out = appendTag(t.out, kvStr, protowire.BytesType)
		t.out = appendLenBytes(t.out, text)
	case kvFloat64:
		t.out = appendTag(t.out, kvFloat64, protowire.Fixed64Type)
		t.out = protowire.AppendFixed64(t.out, number)
	case kvBool, kvInt64:
		t.out = appendTag(t.out, valueField, protowire.VarintType)
		t.out = appendVarint(t.out, number)
	}
	t.out = otlpwire.CloseField(t.out, body)
	return true
}

func (t *jsonTranscoder) keyValue() bool {
	return t.members(kvFields, func(field protowire.Number) bool {
		switch field {
		case kvKey, kvStr:
			return t.stringField(field)
		case kvType:
			return t.enum(field, valueTypes)
		case kvBool:
			return t.boolField(field)
		case kvInt64:
			return t.int64Field(field)
		case kvFloat64:
			return t.float64Field(field)
		default: // kvBinary
			return t.bytesField(field)
		}
	})
}

func (t *jsonTranscoder) log() bool {
	return t.members(logFieldNames, func(field protowire.Number) bool {
		if field == logTimestamp {
			return t.submessage(field, t.timestamp)
		}
		return t.tags(logFields)
	})
}

func (t *jsonTranscoder) process() bool {
	return t.members(processFieldNames, func(field protowire.Number) bool {
		if field == processServiceName {
			return t.stringField(field)
		}
		return t.tags(processTags)
	})
}

// timestamp reads an RFC 3339 time, as jsonpb does, into Timestamp's fields.
func (t *jsonTranscoder) timestamp() bool {
	s, ok := t.plainString()
	if !ok {
		return false
	}
	ts, err := time.Parse(time.RFC3339Nano, string(s))
	if err != nil {
		return false
	}
	t.out = appendWKT(t.out, ts.Unix(), int32(ts.Nanosecond()))
	return true
}

// duration reads a Go duration string ("0.25s"), as jsonpb does for gogo's stdduration.
func (t *jsonTranscoder) duration() bool {
	s, ok := t.plainString()
	if !ok {
		return false
	}
	d, err := time.ParseDuration(string(s))
	if err != nil {
		return false
	}
	ns := d.Nanoseconds()
	t.out = appendWKT(t.out, ns/1e9, int32(ns%1e9))
	return true
}

func appendWKT(out []byte, seconds int64, nanos int32) []byte {
	if seconds != 0 {
		out = appendTag(out, wktSeconds, protowire.VarintType)
		out = appendVarint(out, uint64(seconds))
	}
	if nanos != 0 {
		out = appendTag(out, wktNanos, protowire.VarintType)
		out = appendVarint(out, uint64(int64(nanos)))
	}
	return out
}

// id reads a base64 ID as jaeger-idl's UnmarshalJSON does: the characters between the
// quotes, escapes and all, in standard encoding.
func (t *jsonTranscoder) id(field protowire.Number) bool {
	s, ok := t.rawString()
	if !ok {
		return false
	}
	var buf [32]byte
	if base64.StdEncoding.DecodedLen(len(s)) > len(buf) {
		return false
	}
	n, err := base64.StdEncoding.Decode(buf[:], s)
	if err != nil {
		return false
	}
	t.out = appendTag(t.out, field, protowire.BytesType)
	t.out = appendLenBytes(t.out, buf[:n])
	return true
}

func (t *jsonTranscoder) stringField(field protowire.Number) bool {
	s, ok := t.stringValue()
	if !ok {
		return false
	}
	t.out = appendTag(t.out, field, protowire.BytesType)
	t.out = appendLenBytes(t.out, s)
	return true
}

func (t *jsonTranscoder) bytesField(field protowire.Number) bool {
	s, ok := t.plainString()
	if !ok {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(string(s))
	if err != nil {
		return false // jsonpb also tries URL encoding: the library decides
	}
	t.out = appendTag(t.out, field, protowire.BytesType)
	t.out = appendLenBytes(t.out, b)
	return true
}

func (t *jsonTranscoder) enum(field protowire.Number, names map[string]uint64) bool {
	s, ok := t.plainString()
	if !ok {
		return false
	}
	v, ok := names[string(s)]
	if !ok {
		return false
	}
	t.out = appendTag(t.out, field, protowire.VarintType)
	t.out = appendVarint(t.out, v)
	return true
}

// int64Field reads an int64 as a quoted decimal (how jsonpb writes it) or a bare integer.
func (t *jsonTranscoder) int64Field(field protowire.Number) bool {
	t.skipSpace()
	var s []byte
	if t.pos < len(t.in) && t.in[t.pos] == '"' {
		var ok bool
		// jsonpb reads the quoted text as a JSON number: "00" and "+1" are not.
		if s, ok = t.plainString(); !ok || !json.Valid(s) {
			return false
		}
	} else {
		s = t.number()
	}
	v, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil {
		return false
	}
	t.out = appendTag(t.out, field, protowire.VarintType)
	t.out = appendVarint(t.out, uint64(v))
	return true
}

func (t *jsonTranscoder) uint32Field(field protowire.Number) bool {
	v, err := strconv.ParseUint(string(t.number()), 10, 32)
	if err != nil {
		return false
	}
	t.out = appendTag(t.out, field, protowire.VarintType)
	t.out = appendVarint(t.out, v)
	return true
}

// stringValue reads a JSON string and returns its value, escapes resolved.
func (t *jsonTranscoder) stringValue() ([]byte, bool) {
	raw, escaped, ok := t.scanString()
	if !ok {
		return nil, false
	}
	if !utf8.Valid(raw) {
		return nil, false // encoding/json would replace the bad bytes: the library decides
	}
	if escaped {
		var s string
		if err := json.Unmarshal(t.in[t.pos-len(raw)-2:t.pos], &s); err != nil {
			return nil, false
		}
		return []byte(s), true
	}
	return raw, true
}
