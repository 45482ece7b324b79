// Package spangen makes realistic spans for benchmarks, tests and the demo: the sizes and
// shapes of what instrumented services send, with enough randomness that compression and
// caches do not flatter the numbers.
package spangen

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	jaegertranslator "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/jaeger"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

var (
	services   = []string{"frontend", "checkout", "cart", "payment", "inventory", "shipping", "email", "recommendation"}
	operations = []string{"GET /api/cart", "POST /api/checkout", "SELECT orders", "charge", "reserve", "HTTP GET", "publish", "render"}
	methods    = []string{"GET", "POST", "PUT", "DELETE"}
)

// podsPerService is how many instances of each service send spans: a span's process is
// one of them, as in a real fleet where every span of a pod carries the same process.
const podsPerService = 5

// Generator makes spans from a seeded random source, so a run is reproducible.
type Generator struct {
	rng       *rand.Rand
	base      time.Time
	processes map[string][]*model.Process // by service
}

// New returns a generator seeded with seed.
func New(seed uint64) *Generator {
	g := &Generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), base: time.Unix(1_780_000_000, 0),
		processes: map[string][]*model.Process{}}
	for _, service := range services {
		for range podsPerService {
			g.processes[service] = append(g.processes[service], &model.Process{
				ServiceName: service,
				Tags: []model.KeyValue{
					model.String("hostname", service+"-"+g.hex(10)),
					model.String("ip", fmt.Sprintf("10.1.%d.%d", g.rng.IntN(256), g.rng.IntN(256))),
					model.String("jaeger.version", "Go-2.30.0"),
					model.String("client-uuid", g.hex(16)),
					model.String("k8s.pod.name", service+"-7d9f8c6b5-"+g.hex(5)),
					model.String("k8s.namespace.name", "shop"),
				},
			})
		}
	}
	return g
}

// process returns one of the service's pods' processes, a copy the caller may change.
func (g *Generator) process(service string) *model.Process {
	p := *g.processes[service][g.rng.IntN(podsPerService)]
	p.Tags = append([]model.KeyValue(nil), p.Tags...)
	return &p
}

func (g *Generator) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[g.rng.IntN(16)]
	}
	return string(b)
}

// JaegerSpan returns a span of about 900 bytes in protobuf: 11–12 tags, 1–2 logs of 3
// fields, a CHILD_OF reference, and a process with 6 tags, as the Jaeger collector puts
// on Kafka (the process one of 5 pods of the span's service). seq makes the trace ID
// unique.
func (g *Generator) JaegerSpan(seq uint64) *model.Span {
	traceID := model.TraceID{High: g.rng.Uint64(), Low: seq}
	start := g.base.Add(time.Duration(seq) * time.Millisecond).Add(time.Duration(g.rng.IntN(1000)) * time.Microsecond)
	service := services[g.rng.IntN(len(services))]
	span := &model.Span{
		TraceID:       traceID,
		SpanID:        model.SpanID(g.rng.Uint64() | 1),
		OperationName: operations[g.rng.IntN(len(operations))],
		References: []model.SpanRef{{
			TraceID: traceID, SpanID: model.SpanID(g.rng.Uint64() | 1), RefType: model.ChildOf,
		}},
		Flags:     1,
		StartTime: start,
		Duration:  time.Duration(g.rng.IntN(500_000)) * time.Microsecond,
		Tags: []model.KeyValue{
			model.String("span.kind", "server"),
			model.String("http.method", methods[g.rng.IntN(len(methods))]),
			model.String("http.url", fmt.Sprintf("https://%s.example.com/api/v1/items/%s?session=%s", service, g.hex(12), g.hex(16))),
			model.Int64("http.status_code", int64(200+g.rng.IntN(4)*100)),
			model.String("http.user_agent", "Mozilla/5.0 (X11; Linux x86_64) build/"+g.hex(10)),
			model.String("net.peer.ip", fmt.Sprintf("10.%d.%d.%d", g.rng.IntN(256), g.rng.IntN(256), g.rng.IntN(256))),
			model.Int64("net.peer.port", int64(1024+g.rng.IntN(60000))),
			model.String("component", "net/http"),
			model.String("db.statement", "SELECT * FROM orders WHERE customer_id = '"+g.hex(20)+"'"),
			model.Bool("cache.hit", g.rng.IntN(2) == 0),
			model.Float64("queue.wait_ms", g.rng.Float64()*50),
		},
		Process: g.process(service),
	}
	if g.rng.IntN(2) == 0 {
		span.Tags = append(span.Tags, model.String("error.kind", "none"))
	}
	for i := range 1 + g.rng.IntN(2) {
		span.Logs = append(span.Logs, model.Log{
			Timestamp: start.Add(time.Duration(i+1) * time.Millisecond),
			Fields: []model.KeyValue{
				model.String("event", "retry"),
				model.String("message", "upstream answered slowly, request id "+g.hex(24)),
				model.Int64("attempt", int64(i+1)),
			},
		})
	}
	return span
}

// TraceKey returns the trace ID as the 16 bytes the Jaeger collector keys messages by.
func TraceKey(id model.TraceID) []byte {
	key := make([]byte, 16)
	binary.BigEndian.PutUint64(key[:8], id.High)
	binary.BigEndian.PutUint64(key[8:], id.Low)
	return key
}

// JaegerTrace returns the spans of one trace across services: a root span and 2–6
// descendants, each a CHILD_OF an earlier span of the trace, starting at start.
func (g *Generator) JaegerTrace(seq uint64, start time.Time) []*model.Span {
	n := 3 + g.rng.IntN(5)
	spans := make([]*model.Span, n)
	traceID := model.TraceID{High: g.rng.Uint64(), Low: seq}
	for i := range spans {
		s := g.JaegerSpan(seq)
		s.TraceID = traceID
		s.StartTime = start.Add(time.Duration(i) * time.Millisecond)
		if i == 0 {
			s.References = nil
			s.Process = g.process(services[0])
		} else {
			parent := spans[g.rng.IntN(i)]
			s.References = []model.SpanRef{{TraceID: traceID, SpanID: parent.SpanID, RefType: model.ChildOf}}
		}
		spans[i] = s
	}
	return spans
}

// OTLPTrace returns one trace (JaegerTrace's) as the Collector's Kafka exporter writes it
// to otlp_proto: the spans of each service under their own resource, and its message key.
func (g *Generator) OTLPTrace(seq uint64, start time.Time) (ptrace.Traces, []byte, error) {
	spans := g.JaegerTrace(seq, start)
	var batches []*model.Batch
	byProcess := map[string]*model.Batch{}
	for _, s := range spans {
		key := s.Process.String()
		if byProcess[key] == nil {
			byProcess[key] = &model.Batch{Process: s.Process}
			batches = append(batches, byProcess[key])
		}
		byProcess[key].Spans = append(byProcess[key].Spans, s)
		s.Process = nil
	}
	td, err := jaegertranslator.ProtoToTraces(batches)
	return td, TraceKey(spans[0].TraceID), err
}
