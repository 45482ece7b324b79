package decode

import (
	"strconv"
	"strings"
	"sync"
	"unsafe"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	"go.opentelemetry.io/collector/featuregate"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// jaegerFast decodes jaeger_proto straight from protobuf wire bytes into pdata, producing
// exactly what jaegerProto (the library path: jaeger-idl's Unmarshal, then the Collector's
// translator) produces, at a fraction of its cost. Input it does not handle identically —
// malformed bytes, tags with special meaning to the translator (error, otel.status_code,
// w3c.tracestate, otel.scope.name, …), unusual IDs or times — goes to the library path,
// which also gives the authoritative error. The differential and fuzz tests hold the two
// paths to the same output.
type jaegerFast struct {
	library Decoder
	// statusCodeKeys are the attribute names an http.status_code or
	// http.response.status_code tag becomes, as the translator's feature gates decide.
	statusCodeKeys []string
	scratch        sync.Pool
}

// Tags whose meaning to the translator the fast path leaves to the library.
// Tags the translator turns into span fields rather than attributes.
const (
	tagError             = "error"
	tagStatusCode        = "otel.status_code"
	tagStatusDescription = "otel.status_description"
	tagHTTPStatusMessage = "http.status_message"
	tagTraceState        = "w3c.tracestate"
	tagScopeName         = "otel.scope.name"
	tagScopeVersion      = "otel.scope.version"
)

const (
	keyHTTPStatusV0 = "http.status_code"
	keyHTTPStatusV1 = "http.response.status_code"
)

func newJaegerFast() *jaegerFast {
	// The translator registers these gates; their state is fixed once the process runs.
	dontEmitV0, emitV1 := false, false
	featuregate.GlobalRegistry().VisitAll(func(g *featuregate.Gate) {
		switch g.ID() {
		case "pkg.translator.jaeger.DontEmitV0HttpConventions":
			dontEmitV0 = g.IsEnabled()
		case "pkg.translator.jaeger.EmitV1HttpConventions":
			emitV1 = g.IsEnabled()
		}
	})
	var keys []string
	if !dontEmitV0 {
		keys = append(keys, keyHTTPStatusV0)
	}
	if emitV1 {
		keys = append(keys, keyHTTPStatusV1)
	}
	return &jaegerFast{
		library:        jaegerProto{},
		statusCodeKeys: keys,
		scratch:        sync.Pool{New: func() any { return new(wireSpan) }},
	}
}

func (d *jaegerFast) Decode(data []byte) (ptrace.Traces, error) {
	if len(data) == 0 {
		return ptrace.Traces{}, ErrEmpty
	}
	s := d.scratch.Get().(*wireSpan)
	defer d.scratch.Put(s)
	s.reset()
	// Every string field is a substring of the message viewed as one string, without a
	// copy: the Decoder contract says data is not modified once decoded.
	if !s.parse(data, unsafe.String(&data[0], len(data))) || !d.handles(s) {
		return d.library.Decode(data)
	}
	return d.convert(s), nil
}

// handles reports whether the fast path converts s exactly as the library would.
func (d *jaegerFast) handles(s *wireSpan) bool {
	if s.traceID == ([16]byte{}) || s.spanID == ([8]byte{}) {
		return false // a blank or ID-less span: the library has special cases for it
	}
	return !s.hasProcess || s.service != "OTLPResourceNoServiceName"
}

func (d *jaegerFast) convert(s *wireSpan) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	if s.hasProcess && (s.service != "" || len(s.procTags) > 0) {
		attrs := rs.Resource().Attributes()
		if s.service != "" {
			attrs.EnsureCapacity(len(s.procTags) + 1)
			attrs.PutStr("service.name", s.service)
		} else {
			attrs.EnsureCapacity(len(s.procTags))
		}
		d.putTags(s.procTags, attrs)
		if hostname, ok := attrs.Get("hostname"); ok {
			if _, ok := attrs.Get("host.name"); !ok {
				hostname.CopyTo(attrs.PutEmpty("host.name"))
				attrs.Remove("hostname")
			}
		}
		if version, ok := attrs.Get("jaeger.version"); ok {
			if _, ok := attrs.Get("opencensus.exporterversion"); !ok {
				attrs.PutStr("opencensus.exporterversion", "Jaeger-"+version.Str())
				attrs.Remove("jaeger.version")
			}
		}
	}
	ss := rs.ScopeSpans().AppendEmpty()
	// Like the translator: the first otel.scope.name tag names the scope, and only then
	// the first otel.scope.version tag versions it; both leave the tags.
	if name, ok := s.takeTag(tagScopeName); ok {
		ss.Scope().SetName(name)
		if version, ok := s.takeTag(tagScopeVersion); ok {
			ss.Scope().SetVersion(version)
		}
	}
	span := ss.Spans().AppendEmpty()
	span.SetTraceID(s.traceID)
	span.SetSpanID(s.spanID)
	span.SetName(s.name)
	span.SetStartTimestamp(pcommon.NewTimestampFromTime(s.start))
	span.SetEndTimestamp(pcommon.NewTimestampFromTime(s.start.Add(s.duration)))
	if model.Flags(s.flags).IsSampled() {
		span.SetFlags(span.Flags() | 1)
	}
	parent := s.parentSpanID()
	if parent != ([8]byte{}) {
		span.SetParentSpanID(parent)
	}

	attrs := span.Attributes()
	attrs.EnsureCapacity(len(s.tags))
	d.putTags(s.tags, attrs)
	if kind, ok := attrs.Get("span.kind"); ok {
		span.SetKind(spanKind(kind.Str()))
		attrs.Remove("span.kind")
	}
	setStatus(attrs, span)
	if ts, ok := attrs.Get(tagTraceState); ok {
		span.TraceState().FromRaw(ts.Str())
		attrs.Remove(tagTraceState)
	}
	if attrs.Len() == 0 {
		attrs.Clear()
	}

	if len(s.logs) > 0 {
		events := span.Events()
		events.EnsureCapacity(len(s.logs))
		for i := range s.logs {
			event := events.AppendEmpty()
			event.SetTimestamp(pcommon.NewTimestampFromTime(s.logs[i].ts))
			if len(s.logs[i].fields) == 0 {
				continue
			}
			eattrs := event.Attributes()
			eattrs.EnsureCapacity(len(s.logs[i].fields))
			d.putTags(s.logs[i].fields, eattrs)
			if name, ok := eattrs.Get("event"); ok {
				event.SetName(name.Str())
				eattrs.Remove("event")
			}
		}
	}
	s.putLinks(parent, span.Links())
	return td
}

// parentSpanID follows model.Span.ParentSpanID: the first CHILD_OF reference in the same
// trace, else the first FOLLOWS_FROM one.
func (s *wireSpan) parentSpanID() [8]byte {
	var followsFrom *wireRef
	for i := range s.refs {
		r := &s.refs[i]
		if r.traceID != s.traceID {
			continue
		}
		if r.refType == int32(model.ChildOf) {
			return r.spanID
		}
		if followsFrom == nil && r.refType == int32(model.FollowsFrom) {
			followsFrom = r
		}
	}
	if followsFrom != nil {
		return followsFrom.spanID
	}
	return [8]byte{}
}

// putLinks turns every reference but the parent's CHILD_OF into a link.
func (s *wireSpan) putLinks(parent [8]byte, links ptrace.SpanLinkSlice) {
	isParent := func(r *wireRef) bool { return r.spanID == parent && r.refType == int32(model.ChildOf) }
	if len(s.refs) == 0 || len(s.refs) == 1 && isParent(&s.refs[0]) {
		return
	}
	links.EnsureCapacity(len(s.refs))
	for i := range s.refs {
		r := &s.refs[i]
		if isParent(r) {
			continue
		}
		link := links.AppendEmpty()
		link.SetTraceID(r.traceID)
		link.SetSpanID(r.spanID)
		refType := "follows_from"
		if r.refType == int32(model.ChildOf) {
			refType = "child_of"
		}
		link.Attributes().PutStr("opentracing.ref_type", refType)
	}
}

// putTags adds tags as attributes the way the translator does, renaming the HTTP status
// code tag as its feature gates say.
func (d *jaegerFast) putTags(tags []wireKV, dest pcommon.Map) {
	for i := range tags {
		kv := &tags[i]
		if kv.key == keyHTTPStatusV0 || kv.key == keyHTTPStatusV1 {
			for _, key := range d.statusCodeKeys {
				putValue(dest, key, kv)
			}
			continue
		}
		putValue(dest, kv.key, kv)
	}
}

func putValue(dest pcommon.Map, key string, kv *wireKV) {
	switch kv.vtype {
	case vtString:
		dest.PutStr(key, kv.str)
	case vtBool:
		dest.PutBool(key, kv.b)
	case vtInt64:
		dest.PutInt(key, kv.i)
	case vtFloat64:
		dest.PutDouble(key, kv.f)
	case vtBinary:
		dest.PutEmptyBytes(key).FromRaw(kv.bin)
	}
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

// setHTTPStatus derives the span status from an HTTP status code attribute, as the
// translator does when no error or otel.status_code tag is present (those go to the
// library path): 4xx is an error for clients only, 5xx and unknown codes always.
// setStatus sets the span status from the tags, in the translator's order: a boolean
// error tag that is true first (with otel.status_description or http.status_message as
// the message), then otel.status_code (always removed), then the HTTP status code.
func setStatus(attrs pcommon.Map, span ptrace.Span) {
	code, message, exists := ptrace.StatusCodeUnset, "", false
	description := func() (string, bool) {
		if v, ok := attrs.Get(tagStatusDescription); ok {
			msg := v.Str()
			attrs.Remove(tagStatusDescription)
			return msg, true
		}
		return "", false
	}
	if v, ok := attrs.Get(tagError); ok && v.Type() == pcommon.ValueTypeBool && v.Bool() {
		code, exists = ptrace.StatusCodeError, true
		attrs.Remove(tagError)
		if msg, ok := description(); ok {
			message = msg
		} else if v, ok := attrs.Get(tagHTTPStatusMessage); ok {
			message = v.Str()
		}
	}
	if v, ok := attrs.Get(tagStatusCode); ok {
		if !exists {
			exists = true
			switch strings.ToUpper(v.Str()) {
			case "OK":
				code = ptrace.StatusCodeOk
			case "ERROR":
				code = ptrace.StatusCodeError
			}
			if msg, ok := description(); ok {
				message = msg
			}
		}
		attrs.Remove(tagStatusCode)
	} else if !exists {
		if c, ok := httpStatus(attrs, span.Kind()); ok {
			if c != ptrace.StatusCodeUnset {
				code, exists = c, true
			}
			if v, ok := attrs.Get(tagHTTPStatusMessage); ok {
				message = v.Str()
			}
		}
	}
	if exists {
		span.Status().SetCode(code)
		span.Status().SetMessage(message)
	}
}

// httpStatus is the status an HTTP status code attribute implies, false when there is
// none or it is not a number.
func httpStatus(attrs pcommon.Map, kind ptrace.SpanKind) (ptrace.StatusCode, bool) {
	v, ok := attrs.Get(keyHTTPStatusV0)
	if !ok {
		if v, ok = attrs.Get(keyHTTPStatusV1); !ok {
			return ptrace.StatusCodeUnset, false
		}
	}
	var code int64
	switch v.Type() {
	case pcommon.ValueTypeInt:
		code = v.Int()
	case pcommon.ValueTypeStr:
		var err error
		if code, err = strconv.ParseInt(v.Str(), 10, 0); err != nil {
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
