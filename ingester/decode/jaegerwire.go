package decode

import (
	"math"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of jaeger-idl's model.proto.
const (
	spanTraceID, spanSpanID, spanOperation, spanReferences, spanFlags = 1, 2, 3, 4, 5
	spanStartTime, spanDuration, spanTags, spanLogs, spanProcess      = 6, 7, 8, 9, 10

	refTraceID, refSpanID, refType = 1, 2, 3

	kvKey, kvType, kvStr, kvBool, kvInt64, kvFloat64, kvBinary = 1, 2, 3, 4, 5, 6, 7

	logTimestamp, logFields = 1, 2

	processServiceName, processTags = 1, 2

	// Jaeger's ValueType enum.
	vtString, vtBool, vtInt64, vtFloat64, vtBinary = 0, 1, 2, 3, 4
)

// Bounds gogo's well-known-type conversions enforce; outside them the library fails.
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300800
	// durations up to ±290 years fit time.Duration; beyond, defer to the library.
	maxDurationSeconds = 9_000_000_000
)

// wireSpan is a Jaeger span read from protobuf without copying: strings are substrings of
// the message, converted to a string once. Anything the fast path does not handle exactly
// like the library sets fallback.
type wireSpan struct {
	traceID  [16]byte
	spanID   [8]byte
	name     string
	refs     []wireRef
	flags    uint32
	start    time.Time
	duration time.Duration
	tags     []wireKV
	logs     []wireLog
	// process, as the span carries it; hasProcess is false when the span has none.
	hasProcess bool
	service    string
	procTags   []wireKV
	// process is the process's wire bytes; known is its encoded resource when an
	// earlier span of the same process bytes was transcoded (its tags are then not parsed).
	process []byte
	known   []byte
	// resources are the encoded resources of the processes seen last, by their wire bytes:
	// spans of one process (one pod) repeat it byte for byte in every message.
	resources map[string][]byte

	// Scratch space of the transcoder: attributes being mapped, the encoded resource
	// and scope.
	attrs           attrList
	resource, scope []byte
}

type wireRef struct {
	traceID [16]byte
	spanID  [8]byte
	refType int32
}

type wireKV struct {
	key   string
	vtype int32
	str   string
	b     bool
	i     int64
	f     float64
	bin   []byte
}

type wireLog struct {
	ts     time.Time
	fields []wireKV
}

// reset empties s for reuse, keeping its slices' storage but nothing they referred to:
// their strings are views of the last message, which may be room a batch lends and lets go.
func (s *wireSpan) reset() {
	for i := range s.logs {
		clear(s.logs[i].fields) // the logs keep their fields' storage
	}
	clear(s.refs)
	clear(s.tags)
	clear(s.procTags)
	s.attrs.reset()
	refs, tags, logs, procTags := keptScratch(s.refs), keptScratch(s.tags), keptScratch(s.logs), keptScratch(s.procTags)
	attrs, resource, scope := s.attrs, s.resource[:0], s.scope[:0]
	attrs.kvs = keptScratch(attrs.kvs)
	*s = wireSpan{refs: refs, tags: tags, logs: logs, procTags: procTags, attrs: attrs, resource: resource, scope: scope,
		resources: s.resources}
}

// keptScratch is list emptied for the next span, or nil when one span's thousands of
// tags made it large: a pooled span keeps what a usual span needs, not the largest seen.
func keptScratch[T any](list []T) []T {
	if cap(list) > 1024 {
		return nil
	}
	return list[:0]
}

// parse reads a model.Span from data (and msg, the same bytes as one string). It reports
// false for input the library must judge: malformed protobuf, repeated singular fields,
// IDs of unusual length, out-of-range times, unknown fields.
func (s *wireSpan) parse(data []byte, msg string) bool {
	var seen uint32
	for off := 0; off < len(data); {
		num, typ, next := protowire.Number(data[off]>>3), protowire.Type(data[off]&7), off+1
		if data[off]-8 >= 0x78 { // not a one-byte tag of a field numbered above zero
			num, typ, next = tagAt(data, off)
		}
		if off = next; off < 0 || num > 31 {
			return false
		}
		if num != spanTags && num != spanLogs && num != spanReferences {
			if seen&(1<<num) != 0 {
				return false
			}
			seen |= 1 << num
		}
		switch {
		case num == spanFlags && typ == protowire.VarintType:
			v, n := consumeVarint(data[off:])
			if n < 0 {
				return false
			}
			s.flags = uint32(v)
			off += n
			continue
		case typ != protowire.BytesType:
			return false
		}
		start, end := shortBytesAt(data, off)
		if end == -2 {
			start, end = longBytesAt(data, off)
		}
		if end < 0 || end > len(data) {
			return false
		}
		v, field := data[start:end:end], msg[start:end]
		off = end
		var ok bool
		switch num {
		case spanTraceID:
			ok = len(v) == 16
			copy(s.traceID[:], v)
		case spanSpanID:
			ok = len(v) == 8
			copy(s.spanID[:], v)
		case spanOperation:
			s.name, ok = field, true
		case spanReferences:
			var r wireRef
			if ok = r.parse(v); ok {
				s.refs = append(s.refs, r)
			}
		case spanStartTime:
			s.start, ok = parseTimestamp(v)
		case spanDuration:
			s.duration, ok = parseDuration(v)
		case spanTags:
			s.tags, ok = appendKV(s.tags, v, field)
		case spanLogs:
			s.logs, ok = appendLog(s.logs, v, field)
		case spanProcess:
			s.hasProcess, s.process = true, v
			if s.known, ok = s.resources[string(v)]; !ok {
				ok = s.parseProcess(v, field)
			}
		case 11, 12: // process_id and warnings: the translator ignores them
			ok = true
		}
		if !ok {
			return false
		}
	}
	return true
}

func (s *wireSpan) parseProcess(data []byte, msg string) bool {
	seenName := false
	return eachField(data, func(num protowire.Number, typ protowire.Type, v []byte, field string, _ uint64) bool {
		switch {
		case num == processServiceName && typ == protowire.BytesType && !seenName:
			s.service, seenName = field, true
			return true
		case num == processTags && typ == protowire.BytesType:
			var ok bool
			s.procTags, ok = appendKV(s.procTags, v, field)
			return ok
		}
		return false
	}, msg)
}

func (r *wireRef) parse(data []byte) bool {
	var seen uint8
	return eachField(data, func(num protowire.Number, typ protowire.Type, v []byte, _ string, x uint64) bool {
		if num > 3 || seen&(1<<num) != 0 {
			return false
		}
		seen |= 1 << num
		switch {
		case num == refTraceID && typ == protowire.BytesType && len(v) == 16:
			copy(r.traceID[:], v)
		case num == refSpanID && typ == protowire.BytesType && len(v) == 8:
			copy(r.spanID[:], v)
		case num == refType && typ == protowire.VarintType:
			r.refType = int32(x)
		default:
			return false
		}
		return true
	}, "")
}

// appendKV parses a KeyValue; it is the hot loop of the decoder (a span has some 25), so
// it is written out rather than built on eachField: the one-byte tags and lengths nearly
// every field has are read in place, and the KeyValue is built where it ends up.
func appendKV(kvs []wireKV, data []byte, msg string) ([]wireKV, bool) {
	n0 := len(kvs)
	kvs = append(kvs, wireKV{})
	kv := &kvs[n0]
	var seen uint8
	for off := 0; off < len(data); {
		num, typ, next := protowire.Number(data[off]>>3), protowire.Type(data[off]&7), off+1
		if data[off]-8 >= 0x78 { // not a one-byte tag of a field numbered above zero
			num, typ, next = tagAt(data, off)
		}
		if off = next; off < 0 || num > 7 || seen&(1<<num) != 0 {
			return kvs[:n0], false
		}
		seen |= 1 << num
		switch typ {
		case protowire.BytesType:
			start, end := shortBytesAt(data, off)
			if end == -2 {
				start, end = longBytesAt(data, off)
			}
			if end < 0 || end > len(data) {
				return kvs[:n0], false
			}
			off = end
			switch num {
			case kvKey:
				kv.key = msg[start:end]
			case kvStr:
				kv.str = msg[start:end]
			case kvBinary:
				kv.bin = data[start:end:end]
			default:
				return kvs[:n0], false
			}
		case protowire.VarintType:
			x, n := consumeVarint(data[off:])
			if n < 0 {
				return kvs[:n0], false
			}
			off += n
			switch num {
			case kvType:
				kv.vtype = int32(x)
			case kvBool:
				kv.b = x != 0
			case kvInt64:
				kv.i = int64(x)
			default:
				return kvs[:n0], false
			}
		case protowire.Fixed64Type:
			x, n := protowire.ConsumeFixed64(data[off:])
			if n < 0 || num != kvFloat64 {
				return kvs[:n0], false
			}
			off += n
			kv.f = math.Float64frombits(x)
		default:
			return kvs[:n0], false
		}
	}
	if kv.vtype < vtString || kv.vtype > vtBinary {
		return kvs[:n0], false
	}
	return kvs, true
}

func appendLog(logs []wireLog, data []byte, msg string) ([]wireLog, bool) {
	var l wireLog
	if len(logs) < cap(logs) {
		// Reuse the fields storage of a log from an earlier message.
		l.fields = logs[:len(logs)+1][len(logs)].fields[:0]
	}
	seenTS := false
	ok := eachField(data, func(num protowire.Number, typ protowire.Type, v []byte, field string, _ uint64) bool {
		switch {
		case num == logTimestamp && typ == protowire.BytesType && !seenTS:
			var ok bool
			l.ts, ok = parseTimestamp(v)
			seenTS = true
			return ok
		case num == logFields && typ == protowire.BytesType:
			var ok bool
			l.fields, ok = appendKV(l.fields, v, field)
			return ok
		}
		return false
	}, msg)
	return append(logs, l), ok
}

// eachField calls fn for every field of a message: v holds a length-delimited field's
// bytes, field the same as a substring of msg (when msg is given), x a varint or fixed64.
// It stops at malformed input or when fn returns false, and reports whether it got through.
func eachField(data []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, field string, x uint64) bool, msg string) bool {
	for off := 0; off < len(data); {
		num, typ, n := consumeTag(data[off:])
		if n < 0 {
			return false
		}
		off += n
		var v []byte
		var field string
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = consumeVarint(data[off:])
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(data[off:])
		case protowire.BytesType:
			v, n = consumeBytes(data[off:])
			if n >= 0 && msg != "" {
				field = msg[off+n-len(v) : off+n]
			} else if n >= 0 {
				field = ""
			}
		default:
			return false
		}
		if n < 0 {
			return false
		}
		off += n
		if !fn(num, typ, v, field, x) {
			return false
		}
	}
	return true
}

// parseTimestamp reads a google.protobuf.Timestamp as gogo's stdtime does.
func parseTimestamp(data []byte) (time.Time, bool) {
	sec, nanos, ok := secondsNanos(data)
	if !ok || sec < minTimestampSeconds || sec >= maxTimestampSeconds || nanos < 0 || nanos >= 1e9 {
		return time.Time{}, false
	}
	return time.Unix(sec, nanos).UTC(), true
}

// parseDuration reads a google.protobuf.Duration; unusual ones go to the library.
func parseDuration(data []byte) (time.Duration, bool) {
	sec, nanos, ok := secondsNanos(data)
	if !ok || sec < 0 || sec > maxDurationSeconds || nanos < 0 || nanos >= 1e9 {
		return 0, false
	}
	return time.Duration(sec)*time.Second + time.Duration(nanos), true
}

func secondsNanos(data []byte) (sec, nanos int64, ok bool) {
	var seen uint8
	ok = eachField(data, func(num protowire.Number, typ protowire.Type, _ []byte, _ string, x uint64) bool {
		if typ != protowire.VarintType || num < 1 || num > 2 || seen&(1<<num) != 0 {
			return false
		}
		seen |= 1 << num
		if num == 1 {
			sec = int64(x)
		} else {
			nanos = int64(int32(x))
		}
		return true
	}, "")
	return sec, nanos, ok
}

// takeTag removes the first tag named key and returns its string value (what gogo's
// GetVStr returns, whatever the tag's type), as the translator's getAndDeleteTag does.
func (s *wireSpan) takeTag(key string) (string, bool) {
	for i := range s.tags {
		if s.tags[i].key == key {
			v := s.tags[i].str
			s.tags = append(s.tags[:i], s.tags[i+1:]...)
			return v, true
		}
	}
	return "", false
}
