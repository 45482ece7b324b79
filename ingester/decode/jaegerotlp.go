package decode

import (
	"encoding/binary"
	"math"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/spanflow/spanflow/ingester/otlpwire"
)

// Decode transcodes a jaeger_proto span into OTLP wire bytes in b, under its process's
// resource, so the spans of one process in a delivery share one ResourceSpans.
func (d *jaegerFast) Decode(b *otlpwire.Batch, data []byte) (int, error) {
	n, library, err := d.decode(b, data)
	if library {
		d.fallbacks.Add(1)
	}
	return n, err
}

// decode is Decode, reporting whether the message went to the library rather than
// counting it: jaeger_json counts its messages once.
func (d *jaegerFast) decode(b *otlpwire.Batch, data []byte) (n int, library bool, err error) {
	if len(data) == 0 {
		return 0, false, ErrEmpty
	}
	s := d.scratch.Get().(*wireSpan)
	defer d.scratch.Put(s)
	s.reset()
	// Every string field is a substring of the message viewed as one string, without a
	// copy: the message is not modified while it is transcoded.
	if !s.parse(data, unsafe.String(&data[0], len(data))) || !d.handles(s) {
		n, err := d.library.Decode(b, data)
		return n, true, err
	}
	d.transcode(b, s)
	return 1, false, nil
}

// attrList is a span's, a process's or a log's attributes, changed with the operations
// of pdata's Map that the translator uses (put replaces a value in place, remove moves the
// last attribute into the hole), so they come out in the order the library path gives.
type attrList struct {
	kvs []wireKV
	// index locates the keys once the list is long: found by a walk of the list, a
	// message of 150,000 distinct tags (1 MiB) took 42 s to decode, its partition held.
	index map[string]int
}

// attrIndexFrom is the length from which a list keeps its index.
const attrIndexFrom = 32

// reset empties the list, keeping its storage (not a large one's index).
func (l *attrList) reset() {
	clear(l.kvs)
	l.kvs = l.kvs[:0]
	l.index = nil
}

func (l *attrList) find(key string) int {
	if l.index != nil {
		if i, ok := l.index[key]; ok {
			return i
		}
		return -1
	}
	for i := range l.kvs {
		if l.kvs[i].key == key {
			return i
		}
	}
	return -1
}

// get returns the attribute named key, or nil.
func (l *attrList) get(key string) *wireKV {
	if i := l.find(key); i >= 0 {
		return &l.kvs[i]
	}
	return nil
}

func (l *attrList) put(key string, kv *wireKV) {
	if kv.vtype < vtString || kv.vtype > vtBinary {
		return // the translator drops tags of an unknown type
	}
	v := *kv
	v.key = key
	if i := l.find(key); i >= 0 {
		l.kvs[i] = v
		return
	}
	l.kvs = append(l.kvs, v)
	switch {
	case l.index != nil:
		l.index[key] = len(l.kvs) - 1
	case len(l.kvs) > attrIndexFrom:
		l.index = make(map[string]int, 2*len(l.kvs))
		for i := range l.kvs {
			l.index[l.kvs[i].key] = i
		}
	}
}

func (l *attrList) putStr(key, value string) {
	l.put(key, &wireKV{vtype: vtString, str: value})
}

// remove takes the attribute named key out, the last one taking its place (as pdata's
// Map.Remove does).
func (l *attrList) remove(key string) {
	i := l.find(key)
	if i < 0 {
		return
	}
	last := len(l.kvs) - 1
	l.kvs[i] = l.kvs[last]
	l.kvs[last] = wireKV{}
	l.kvs = l.kvs[:last]
	if l.index != nil {
		delete(l.index, key)
		if i < last {
			l.index[l.kvs[i].key] = i
		}
	}
}

// str is pdata's Value.Str: the string, or "" for a value of another type.
func str(kv *wireKV) string {
	if kv.vtype != vtString {
		return ""
	}
	return kv.str
}

// putTags adds tags as the translator does, renaming the HTTP status code tag as its
// feature gates say.
func (d *jaegerFast) putTags(dst *attrList, tags []wireKV) {
	for i := range tags {
		kv := &tags[i]
		if kv.key == keyHTTPStatusV0 || kv.key == keyHTTPStatusV1 {
			for _, key := range d.statusCodeKeys {
				dst.put(key, kv)
			}
			continue
		}
		dst.put(kv.key, kv)
	}
}

// transcodeResource encodes the resource of s's process (its service and tags) into
// s.resource, and keeps it for later spans of the same process bytes.
func (d *jaegerFast) transcodeResource(s *wireSpan) {
	s.attrs.reset()
	if s.hasProcess && (s.service != "" || len(s.procTags) > 0) {
		if s.service != "" {
			s.attrs.putStr("service.name", s.service)
		}
		d.putTags(&s.attrs, s.procTags)
		if hostname := s.attrs.get("hostname"); hostname != nil && s.attrs.get("host.name") == nil {
			s.attrs.put("host.name", hostname)
			s.attrs.remove("hostname")
		}
		if version := s.attrs.get("jaeger.version"); version != nil && s.attrs.get("opencensus.exporterversion") == nil {
			s.attrs.putStr("opencensus.exporterversion", "Jaeger-"+str(version))
			s.attrs.remove("jaeger.version")
		}
	}
	s.resource = appendAttrs(s.resource[:0], otlpwire.ResourceAttributes, &s.attrs)
	if s.hasProcess && len(s.process) <= maxKnownProcessBytes {
		if s.resources == nil || len(s.resources) >= maxKnownProcesses {
			s.resources = make(map[string][]byte, maxKnownProcesses)
		}
		s.resources[string(s.process)] = slices.Clone(s.resource)
	}
}

// maxKnownProcesses bounds the resources a decoding goroutine keeps (about 64 KB): a
// fleet of more pods than that gains less from them. A process of more than
// maxKnownProcessBytes is not kept: 64 of a megabyte each were 120 MiB kept by one
// goroutine.
const (
	maxKnownProcesses    = 64
	maxKnownProcessBytes = 4 << 10
)

// transcode appends s to b, mapping it as the OpenTelemetry translator does.
func (d *jaegerFast) transcode(b *otlpwire.Batch, s *wireSpan) {
	if s.known != nil {
		s.resource = append(s.resource[:0], s.known...)
	} else {
		d.transcodeResource(s)
	}

	// The scope: the first otel.scope.name tag names it, and only then the first
	// otel.scope.version tag versions it; both leave the tags.
	s.scope = s.scope[:0]
	if name, ok := s.takeTag(tagScopeName); ok {
		s.scope = appendString(s.scope, otlpwire.ScopeName, name)
		if version, ok := s.takeTag(tagScopeVersion); ok {
			s.scope = appendString(s.scope, otlpwire.ScopeVersion, version)
		}
	}

	s.attrs.reset()
	d.putTags(&s.attrs, s.tags)
	var kind ptrace.SpanKind
	if k := s.attrs.get("span.kind"); k != nil {
		kind = spanKind(str(k))
		s.attrs.remove("span.kind")
	}
	status, statusSet := s.attrs.status(kind)
	traceState := ""
	if ts := s.attrs.get(tagTraceState); ts != nil {
		traceState = str(ts)
		s.attrs.remove(tagTraceState)
	}

	buf := b.SpanBuffer(s.resource, s.scope)
	out, body := otlpwire.OpenSpan(*buf)
	out = appendBytes(out, otlpwire.SpanTraceID, s.traceID[:])
	out = appendBytes(out, otlpwire.SpanSpanID, s.spanID[:])
	if traceState != "" {
		out = appendString(out, otlpwire.SpanTraceState, traceState)
	}
	parent := s.parentSpanID()
	if parent != ([8]byte{}) {
		out = appendBytes(out, otlpwire.SpanParentSpanID, parent[:])
	}
	if s.name != "" {
		out = appendString(out, otlpwire.SpanName, s.name)
	}
	if kind != ptrace.SpanKindUnspecified {
		out = appendTag(out, otlpwire.SpanKind, protowire.VarintType)
		out = appendVarint(out, uint64(kind))
	}
	out = appendFixed64(out, otlpwire.SpanStartTime, uint64(s.start.UnixNano()))
	out = appendFixed64(out, otlpwire.SpanEndTime, uint64(s.start.Add(s.duration).UnixNano()))
	out = appendAttrs(out, otlpwire.SpanAttributes, &s.attrs)
	for i := range s.logs {
		out = d.appendEvent(out, s, &s.logs[i])
	}
	out = s.appendLinks(out, parent)
	if statusSet {
		var sb int
		out, sb = otlpwire.OpenField(out, otlpwire.SpanStatus)
		if status.message != "" {
			out = appendString(out, otlpwire.StatusMessage, status.message)
		}
		if status.code != ptrace.StatusCodeUnset {
			out = appendTag(out, otlpwire.StatusCode, protowire.VarintType)
			out = appendVarint(out, uint64(status.code))
		}
		out = otlpwire.CloseField(out, sb)
	}
	if model.Flags(s.flags).IsSampled() {
		out = appendTag(out, otlpwire.SpanFlags, protowire.Fixed32Type)
		out = protowire.AppendFixed32(out, 1)
	}
	*buf = otlpwire.CloseField(out, body)
	b.AddSpans(1)
}

func (d *jaegerFast) appendEvent(out []byte, s *wireSpan, log *wireLog) []byte {
	out, body := otlpwire.OpenField(out, otlpwire.SpanEvents)
	out = appendFixed64(out, otlpwire.EventTime, uint64(log.ts.UnixNano()))
	if len(log.fields) > 0 {
		s.attrs.reset()
		d.putTags(&s.attrs, log.fields)
		if name := s.attrs.get("event"); name != nil {
			if n := str(name); n != "" {
				out = appendString(out, otlpwire.EventName, n)
			}
			s.attrs.remove("event")
		}
		out = appendAttrs(out, otlpwire.EventAttributes, &s.attrs)
	}
	return otlpwire.CloseField(out, body)
}

// appendLinks turns every reference but the parent's CHILD_OF into a link.
func (s *wireSpan) appendLinks(out []byte, parent [8]byte) []byte {
	for i := range s.refs {
		r := &s.refs[i]
		if r.spanID == parent && r.refType == int32(model.ChildOf) {
			continue
		}
		refType := "follows_from"
		if r.refType == int32(model.ChildOf) {
			refType = "child_of"
		}
		var body int
		out, body = otlpwire.OpenField(out, otlpwire.SpanLinks)
		out = appendBytes(out, otlpwire.LinkTraceID, r.traceID[:])
		out = appendBytes(out, otlpwire.LinkSpanID, r.spanID[:])
		out = appendKeyValue(out, otlpwire.LinkAttributes, &wireKV{key: "opentracing.ref_type", vtype: vtString, str: refType})
		out = otlpwire.CloseField(out, body)
	}
	return out
}

type spanStatus struct {
	code    ptrace.StatusCode
	message string
}

// status derives the span status from the tags, in the translator's order, removing the
// tags it consumes: a boolean error tag that is true first (with otel.status_description
// or http.status_message as the message), then otel.status_code (always removed), then
// the HTTP status code.
func (l *attrList) status(kind ptrace.SpanKind) (spanStatus, bool) {
	var st spanStatus
	exists := false
	description := func() (string, bool) {
		if v := l.get(tagStatusDescription); v != nil {
			msg := str(v)
			l.remove(tagStatusDescription)
			return msg, true
		}
		return "", false
	}
	if v := l.get(tagError); v != nil && v.vtype == vtBool && v.b {
		st.code, exists = ptrace.StatusCodeError, true
		l.remove(tagError)
		if msg, ok := description(); ok {
			st.message = msg
		} else if v := l.get(tagHTTPStatusMessage); v != nil {
			st.message = str(v)
		}
	}
	if v := l.get(tagStatusCode); v != nil {
		if !exists {
			exists = true
			switch strings.ToUpper(str(v)) {
			case "OK":
				st.code = ptrace.StatusCodeOk
			case "ERROR":
				st.code = ptrace.StatusCodeError
			}
			if msg, ok := description(); ok {
				st.message = msg
			}
		}
		l.remove(tagStatusCode)
	} else if !exists {
		if c, ok := l.httpStatus(kind); ok {
			if c != ptrace.StatusCodeUnset {
				st.code, exists = c, true
			}
			if v := l.get(tagHTTPStatusMessage); v != nil {
				st.message = str(v)
			}
		}
	}
	return st, exists
}

// httpStatus is the status an HTTP status code attribute implies, false when there is
// none or it is not a number: 4xx is an error for clients only, 5xx and unknown codes
// always.
func (l *attrList) httpStatus(kind ptrace.SpanKind) (ptrace.StatusCode, bool) {
	v := l.get(keyHTTPStatusV0)
	if v == nil {
		if v = l.get(keyHTTPStatusV1); v == nil {
			return ptrace.StatusCodeUnset, false
		}
	}
	var code int64
	switch v.vtype {
	case vtInt64:
		code = v.i
	case vtString:
		var err error
		if code, err = strconv.ParseInt(v.str, 10, 0); err != nil {
			return ptrace.StatusCodeUnset, false
		}
	default:
		return ptrace.StatusCodeUnset, false
	}
	switch {
	case code >= 400 && code < 500 && kind == ptrace.SpanKindClient:
		return ptrace.StatusCodeError, true
	case code >= 400 && code < 500 && kind == ptrace.SpanKindServer:
		return ptrace.StatusCodeUnset, true
	case code >= 100 && code < 399:
		return ptrace.StatusCodeUnset, true
	}
	return ptrace.StatusCodeError, true
}

func spanKind(kind string) ptrace.SpanKind {
	switch kind {
	case "client":
		return ptrace.SpanKindClient
	case "server":
		return ptrace.SpanKindServer
	case "producer":
		return ptrace.SpanKindProducer
	case "consumer":
		return ptrace.SpanKindConsumer
	case "internal":
		return ptrace.SpanKindInternal
	}
	return ptrace.SpanKindUnspecified
}

func appendAttrs(out []byte, field protowire.Number, attrs *attrList) []byte {
	for i := range attrs.kvs {
		out = appendKeyValue(out, field, &attrs.kvs[i])
	}
	return out
}

// appendKeyValue appends kv as a KeyValue in field.
func appendKeyValue(out []byte, field protowire.Number, kv *wireKV) []byte {
	var value int // the AnyValue's size
	switch kv.vtype {
	case vtString:
		value = 1 + protowire.SizeBytes(len(kv.str))
	case vtBool:
		value = 2
	case vtInt64:
		value = 1 + protowire.SizeVarint(uint64(kv.i))
	case vtFloat64:
		value = 9
	case vtBinary:
		value = 1 + protowire.SizeBytes(len(kv.bin))
	}
	size := 1 + protowire.SizeBytes(len(kv.key)) + 1 + protowire.SizeBytes(value)
	out = appendTag(out, field, protowire.BytesType)
	out = appendVarint(out, uint64(size))
	out = appendString(out, otlpwire.KeyValueKey, kv.key)
	out = appendTag(out, otlpwire.KeyValueValue, protowire.BytesType)
	out = appendVarint(out, uint64(value))
	switch kv.vtype {
	case vtString:
		out = appendString(out, otlpwire.ValueString, kv.str)
	case vtBool:
		v := uint64(0)
		if kv.b {
			v = 1
		}
		out = appendTag(out, otlpwire.ValueBool, protowire.VarintType)
		out = appendVarint(out, v)
	case vtInt64:
		out = appendTag(out, otlpwire.ValueInt, protowire.VarintType)
		out = appendVarint(out, uint64(kv.i))
	case vtFloat64:
		out = appendFixed64(out, otlpwire.ValueDouble, math.Float64bits(kv.f))
	case vtBinary:
		out = appendBytes(out, otlpwire.ValueBytes, kv.bin)
	}
	return out
}

func appendString(out []byte, field protowire.Number, s string) []byte {
	out = appendTag(out, field, protowire.BytesType)
	return appendLenString(out, s)
}

func appendBytes(out []byte, field protowire.Number, v []byte) []byte {
	out = appendTag(out, field, protowire.BytesType)
	return appendLenBytes(out, v)
}

func appendFixed64(out []byte, field protowire.Number, v uint64) []byte {
	out = appendTag(out, field, protowire.Fixed64Type)
	return binary.LittleEndian.AppendUint64(out, v)
}
