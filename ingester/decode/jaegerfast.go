package decode

import (
	"sync"
	"sync/atomic"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	"go.opentelemetry.io/collector/featuregate"
)

// jaegerFast transcodes jaeger_proto straight from protobuf wire bytes into OTLP's, producing
// exactly what jaegerProto (the library path: jaeger-idl's Unmarshal, then the Collector's
// translator, then pdata's marshaler) produces, at a fraction of its cost and without a
// pdata object. Input it does not handle identically — malformed bytes, repeated singular
// fields, blank IDs, unusual times — goes to the library path, which also gives the
// authoritative error. The differential and fuzz tests hold the two paths to the same
// output.
type jaegerFast struct {
	library Decoder
	// statusCodeKeys are the attribute names an http.status_code or
	// http.response.status_code tag becomes, as the translator's feature gates decide.
	statusCodeKeys []string
	scratch        sync.Pool
	fallbacks      atomic.Uint64
}

// LibraryDecodes implements LibraryCounter.
func (d *jaegerFast) LibraryDecodes() uint64 { return d.fallbacks.Load() }

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

// handles reports whether the fast path converts s exactly as the library would.
func (d *jaegerFast) handles(s *wireSpan) bool {
	if s.traceID == ([16]byte{}) || s.spanID == ([8]byte{}) {
		return false // a blank or ID-less span: the library has special cases for it
	}
	// A process whose resource is known passed this check before.
	return !s.hasProcess || s.known != nil || s.service != "OTLPResourceNoServiceName"
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
