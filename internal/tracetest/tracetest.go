// Package tracetest holds the traces every encoding and every peer is tried with, and a
// view of a span made of what survives a trip through Jaeger's and Zipkin's models.
package tracetest

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Trace IDs of the corpus: a 128-bit one, and a 64-bit one (the high half zero, as Jaeger
// clients and Zipkin's 64-bit mode make them).
var (
	CheckoutTrace = pcommon.TraceID{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c}
	BatchTrace    = pcommon.TraceID{0, 0, 0, 0, 0, 0, 0, 0, 0x4a, 0x1f, 0x09, 0x27, 0x33, 0x5e, 0x10, 0x07}
)

// base is the corpus's start time, on a whole microsecond (Jaeger and Zipkin keep µs).
var base = time.Date(2026, 11, 20, 9, 30, 0, 123456000, time.UTC)

func spanID(n byte) pcommon.SpanID { return pcommon.SpanID{0xa0, 0, 0, 0, 0, 0, 0, n} }

type spanSpec struct {
	trace                pcommon.TraceID
	id, parent           byte
	name                 string
	kind                 ptrace.SpanKind
	startMs, durationMs  int
	attrs                map[string]any
	events               []string
	linkTrace            pcommon.TraceID
	linkSpan             byte
	statusError, okSpans bool
}

type serviceSpec struct {
	name  string
	attrs map[string]string
	spans []spanSpec
}

// Corpus returns the shared test traces: a checkout trace across three services (server,
// client and internal spans; string, int, double and bool attributes; events with
// attributes; an error status with a message; a link to the other trace) and a batch trace
// with a 64-bit ID across a producer and a consumer.
func Corpus() ptrace.Traces {
	services := []serviceSpec{
		{name: "frontend", attrs: map[string]string{"host.name": "web-1", "deployment.environment": "prod"}, spans: []spanSpec{
			{trace: CheckoutTrace, id: 1, name: "POST /checkout", kind: ptrace.SpanKindServer, durationMs: 250,
				attrs:  map[string]any{"http.request.method": "POST", "http.response.status_code": int64(500), "http.route": "/checkout"},
				events: []string{"request.received"}, statusError: true},
			{trace: CheckoutTrace, id: 2, parent: 1, name: "checkout.Place", kind: ptrace.SpanKindClient, startMs: 5, durationMs: 240,
				attrs: map[string]any{"rpc.system": "grpc", "rpc.service": "checkout"}},
		}},
		{name: "checkout", attrs: map[string]string{"host.name": "checkout-7f9c", "service.version": "2.4.1"}, spans: []spanSpec{
			{trace: CheckoutTrace, id: 3, parent: 2, name: "checkout.Place", kind: ptrace.SpanKindServer, startMs: 8, durationMs: 230,
				attrs:  map[string]any{"cart.items": int64(3), "cart.total": 129.95, "customer.vip": true},
				events: []string{"stock.reserved", "payment.declined"}, statusError: true,
				linkTrace: BatchTrace, linkSpan: 11},
			{trace: CheckoutTrace, id: 4, parent: 3, name: "price", kind: ptrace.SpanKindInternal, startMs: 10, durationMs: 12,
				attrs: map[string]any{"currency": "EUR"}, okSpans: true},
			{trace: CheckoutTrace, id: 5, parent: 3, name: "payments.Charge", kind: ptrace.SpanKindClient, startMs: 30, durationMs: 200,
				attrs: map[string]any{"rpc.system": "grpc", "rpc.service": "payments"}},
		}},
		{name: "payments", attrs: map[string]string{"host.name": "pay-0", "cloud.region": "eu-west-1"}, spans: []spanSpec{
			{trace: CheckoutTrace, id: 6, parent: 5, name: "payments.Charge", kind: ptrace.SpanKindServer, startMs: 33, durationMs: 190,
				attrs: map[string]any{"payment.method": "card", "payment.amount": 129.95, "retry": int64(2)}, statusError: true},
		}},
		{name: "batch-worker", attrs: map[string]string{"host.name": "worker-3"}, spans: []spanSpec{
			{trace: BatchTrace, id: 10, name: "publish orders", kind: ptrace.SpanKindProducer, startMs: -1000, durationMs: 4,
				attrs: map[string]any{"messaging.system": "kafka", "messaging.destination.name": "orders"}},
		}},
		{name: "ledger", attrs: map[string]string{"host.name": "ledger-1", "db.system": "postgresql"}, spans: []spanSpec{
			{trace: BatchTrace, id: 11, parent: 10, name: "process orders", kind: ptrace.SpanKindConsumer, startMs: -990, durationMs: 40,
				attrs: map[string]any{"messaging.system": "kafka", "messaging.batch.message_count": int64(12)}, events: []string{"committed"}},
		}},
	}
	td := ptrace.NewTraces()
	for _, svc := range services {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc.name)
		for _, k := range sortedKeys(svc.attrs) {
			rs.Resource().Attributes().PutStr(k, svc.attrs[k])
		}
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("shop/instrumentation")
		ss.Scope().SetVersion("1.2.0")
		for _, sp := range svc.spans {
			span := ss.Spans().AppendEmpty()
			span.SetTraceID(sp.trace)
			span.SetSpanID(spanID(sp.id))
			if sp.parent != 0 {
				span.SetParentSpanID(spanID(sp.parent))
			}
			span.SetName(sp.name)
			span.SetKind(sp.kind)
			start := base.Add(time.Duration(sp.startMs) * time.Millisecond)
			span.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
			span.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(sp.durationMs) * time.Millisecond)))
			for _, k := range sortedKeys(sp.attrs) {
				switch v := sp.attrs[k].(type) {
				case string:
					span.Attributes().PutStr(k, v)
				case int64:
					span.Attributes().PutInt(k, v)
				case float64:
					span.Attributes().PutDouble(k, v)
				case bool:
					span.Attributes().PutBool(k, v)
				}
			}
			for i, name := range sp.events {
				e := span.Events().AppendEmpty()
				e.SetName(name)
				e.SetTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i+1) * time.Millisecond)))
				e.Attributes().PutStr("detail", name+" detail")
			}
			if sp.linkSpan != 0 {
				l := span.Links().AppendEmpty()
				l.SetTraceID(sp.linkTrace)
				l.SetSpanID(spanID(sp.linkSpan))
			}
			switch {
			case sp.statusError:
				span.Status().SetCode(ptrace.StatusCodeError)
				span.Status().SetMessage(sp.name + " failed")
			case sp.okSpans:
				span.Status().SetCode(ptrace.StatusCodeOk)
			}
		}
	}
	return td
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// SpanView is what a span says, in terms every format keeps some of.
type SpanView struct {
	Service, Name, Parent string
	Kind                  ptrace.SpanKind
	Status                ptrace.StatusCode
	// Start and End are Unix microseconds.
	Start, End int64
	// Attributes are the span's attributes, values as strings.
	Attributes map[string]string
	// Resource are the resource's attributes other than service.name.
	Resource map[string]string
	// Events are the events' names; Links the linked trace/span IDs; both sorted.
	Events, Links []string
}

// Key names a span across formats: trace ID and span ID in hex.
func Key(traceID pcommon.TraceID, spanID pcommon.SpanID) string {
	return traceID.String() + "/" + spanID.String()
}

// Views lists the spans of td by Key.
func Views(td ptrace.Traces) map[string]SpanView {
	out := map[string]SpanView{}
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		res := rss.At(i).Resource().Attributes()
		svc, _ := res.Get("service.name")
		resource := map[string]string{}
		res.Range(func(k string, v pcommon.Value) bool {
			if k != "service.name" {
				resource[k] = v.AsString()
			}
			return true
		})
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				s := spans.At(k)
				v := SpanView{Service: svc.Str(), Name: s.Name(), Kind: s.Kind(), Status: s.Status().Code(),
					Start: s.StartTimestamp().AsTime().UnixMicro(), End: s.EndTimestamp().AsTime().UnixMicro(),
					Attributes: map[string]string{}, Resource: resource}
				if !s.ParentSpanID().IsEmpty() {
					v.Parent = s.ParentSpanID().String()
				}
				s.Attributes().Range(func(k string, val pcommon.Value) bool {
					v.Attributes[k] = val.AsString()
					return true
				})
				for e := range s.Events().Len() {
					v.Events = append(v.Events, s.Events().At(e).Name())
				}
				for l := range s.Links().Len() {
					link := s.Links().At(l)
					v.Links = append(v.Links, Key(link.TraceID(), link.SpanID()))
				}
				// Order carries no meaning (Jaeger's API returns events newest first).
				slices.Sort(v.Events)
				slices.Sort(v.Links)
				out[Key(s.TraceID(), s.SpanID())] = v
			}
		}
	}
	return out
}

// Keeps says how a format carries a span where it differs from OTLP. Identity,
// parentage, name, times, kind, status, attributes, event names and links every encoding
// spanflow reads keeps (Jaeger and Zipkin through tags where their model lacks a field).
type Keeps struct {
	// ResourceAsTags: the format has no resource, only span tags, and a reader restores
	// only the attributes it knows to be resource attributes (Zipkin).
	ResourceAsTags bool
	// LowerCaseNames: the format lower-cases span names (Zipkin).
	LowerCaseNames bool
}

// Compare lists the differences between what want says and what got kept of it, under
// keeps. Attributes got adds (formats record kind and status as tags too) are not
// differences; attributes it lost or changed are.
func Compare(want, got map[string]SpanView, keeps Keeps) []string {
	var diffs []string
	for _, key := range sortedKeys(want) {
		w := want[key]
		g, ok := got[key]
		if !ok {
			diffs = append(diffs, key+": missing")
			continue
		}
		name := w.Name
		if keeps.LowerCaseNames {
			name = strings.ToLower(name)
		}
		check := func(what string, a, b any) {
			if fmt.Sprint(a) != fmt.Sprint(b) {
				diffs = append(diffs, fmt.Sprintf("%s (%s %s): %s is %v, want %v", key, w.Service, w.Name, what, b, a))
			}
		}
		check("service", w.Service, g.Service)
		check("name", name, g.Name)
		check("parent", w.Parent, g.Parent)
		check("start", w.Start, g.Start)
		check("end", w.End, g.End)
		for k, v := range w.Attributes {
			check("attribute "+k, v, g.Attributes[k])
		}
		check("kind", w.Kind, g.Kind)
		check("status", w.Status, g.Status)
		check("events", w.Events, g.Events)
		check("links", w.Links, g.Links)
		for k, v := range w.Resource {
			got, ok := g.Resource[k]
			if !ok && keeps.ResourceAsTags {
				got = g.Attributes[k]
			}
			check("resource "+k, v, got)
		}
	}
	if len(got) > len(want) {
		diffs = append(diffs, fmt.Sprintf("%d spans, want %d", len(got), len(want)))
	}
	return diffs
}
