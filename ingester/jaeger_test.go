package ingester

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/otlpwire"
	"github.com/spanflow/spanflow/ingester/store"
	"github.com/spanflow/spanflow/internal/jaegertest"
	"github.com/spanflow/spanflow/internal/kafkatest"
	"github.com/spanflow/spanflow/internal/tracetest"
)

// corpusMessages is the shared test traces as OTLP messages, one per trace, keyed by
// trace ID, as a Collector's Kafka exporter partitions them.
func corpusMessages(t *testing.T) []kafka.Message {
	t.Helper()
	corpus := tracetest.Corpus()
	var msgs []kafka.Message
	for _, id := range []pcommon.TraceID{tracetest.CheckoutTrace, tracetest.BatchTrace} {
		td := ptrace.NewTraces()
		corpus.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
			if rs.ScopeSpans().At(0).Spans().At(0).TraceID() != id {
				return false
			}
			rs.CopyTo(td.ResourceSpans().AppendEmpty())
			return true
		})
		data, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Key: id[:], Value: data})
	}
	return msgs
}

// TestJaegerIsTheOTLPBackend ingests the shared test traces and 200 more through the otlp
// writer into a real Jaeger v2, over gRPC and over HTTP, and reads them back from Jaeger's
// HTTP API: every trace with every span, its tags, parent references and service.
func TestJaegerIsTheOTLPBackend(t *testing.T) {
	for _, protocol := range []string{config.OTLPProtocolGRPC, config.OTLPProtocolHTTP} {
		t.Run(protocol, func(t *testing.T) {
			jaeger := jaegertest.StartBackend(t)
			const topic, group = "spans", "to-jaeger"
			b := kafkatest.Start(t, topic, partitions)
			b.Produce(t, topic, corpusMessages(t)...)
			b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 1, 200, 3)...)

			cfg := testConfig(b.Addr, topic, group)
			cfg.Storage.Type = config.StorageOTLP
			cfg.Storage.OTLP = config.OTLPStorage{Protocol: protocol, Endpoint: jaeger.OTLPGRPC, Insecure: true,
				Compression: config.CompressionGzip, Timeout: config.Duration(5 * time.Second)}
			if protocol == config.OTLPProtocolHTTP {
				cfg.Storage.OTLP.Endpoint = jaeger.OTLPHTTP
			}
			r := startIngester(t, cfg, nil)

			// The generated traces: each with its 3 spans.
			for seq := uint64(1); seq <= 200; seq++ {
				want := kafkatest.Traces(seq, 3)
				id := want.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
				var tr jaegertest.Trace
				waitFor(t, 30*time.Second, "trace "+id.String()+" in Jaeger", func() bool {
					var found bool
					tr, found, _ = jaeger.Trace(id)
					return found && len(tr.Spans) == 3
				})
			}
			// The shared traces, span by span, through the OTLP view of Jaeger's API v3 ...
			want := tracetest.Views(tracetest.Corpus())
			got := ptrace.NewTraces()
			for _, id := range []pcommon.TraceID{tracetest.CheckoutTrace, tracetest.BatchTrace} {
				waitFor(t, 30*time.Second, "trace "+id.String()+" in Jaeger", func() bool {
					td, found, _ := jaeger.TraceOTLP(id)
					if found {
						td.ResourceSpans().MoveAndAppendTo(got.ResourceSpans())
					}
					return found
				})
			}
			for _, diff := range tracetest.Compare(want, tracetest.Views(got), tracetest.Keeps{}) {
				t.Error("api/v3:", diff)
			}
			// ... and through the classic API the Jaeger UI uses: tags and parent references.
			tr, _, err := jaeger.Trace(tracetest.CheckoutTrace)
			if err != nil {
				t.Fatal(err)
			}
			checkJaegerTrace(t, tr, want)
			services, err := jaeger.Services()
			if err != nil {
				t.Fatal(err)
			}
			for _, svc := range []string{"frontend", "checkout", "payments", "batch-worker", "ledger"} {
				if !slices.Contains(services, svc) {
					t.Errorf("/api/services lacks %q: %v", svc, services)
				}
			}
			r.stop(t)
			assertCommittedToEnd(t, b, group, topic)
		})
	}
}

// checkJaegerTrace holds a trace from /api/traces/{id} against the spans it should have.
func checkJaegerTrace(t *testing.T, tr jaegertest.Trace, want map[string]tracetest.SpanView) {
	t.Helper()
	spans := 0
	for _, s := range tr.Spans {
		key := tr.TraceID + "/" + s.SpanID
		if len(tr.TraceID) == 16 { // Jaeger shortens a 64-bit ID
			key = strings.Repeat("0", 16) + key
		}
		w, ok := want[key]
		if !ok {
			t.Errorf("unexpected span %s", key)
			continue
		}
		spans++
		if got := tr.Processes[s.ProcessID].ServiceName; got != w.Service {
			t.Errorf("span %s: service %q, want %q", key, got, w.Service)
		}
		if s.OperationName != w.Name {
			t.Errorf("span %s: operation %q, want %q", key, s.OperationName, w.Name)
		}
		parent := ""
		for _, ref := range s.References {
			if ref.RefType == "CHILD_OF" {
				parent = ref.SpanID
			}
		}
		if parent != w.Parent {
			t.Errorf("span %s: CHILD_OF %q, want %q", key, parent, w.Parent)
		}
		tags := map[string]string{}
		for _, kv := range s.Tags {
			tags[kv.Key] = fmt.Sprint(kv.Value)
		}
		for k, v := range w.Attributes {
			if tags[k] != v {
				t.Errorf("span %s: tag %s = %q, want %q", key, k, tags[k], v)
			}
		}
		if len(s.Logs) != len(w.Events) {
			t.Errorf("span %s: %d logs, want %d", key, len(s.Logs), len(w.Events))
		}
	}
	wantSpans := 0
	for k := range want {
		if strings.HasPrefix(k, tracetest.CheckoutTrace.String()) {
			wantSpans++
		}
	}
	if spans != wantSpans {
		t.Errorf("/api/traces shows %d spans of the checkout trace, want %d", spans, wantSpans)
	}
}

// TestJaegerProducesWhatSpanflowReads: Jaeger v2, receiving the shared test traces over
// OTLP, writes them to Kafka with its own Kafka exporter in each encoding it shares with
// spanflow; spanflow, configured with that encoding, reads every span back.
func TestJaegerProducesWhatSpanflowReads(t *testing.T) {
	want := tracetest.Views(tracetest.Corpus())
	for _, encoding := range []string{config.EncodingOTLPProto, config.EncodingOTLPJSON, config.EncodingJaegerProto,
		config.EncodingJaegerJSON, config.EncodingZipkinProto, config.EncodingZipkinJSON} {
		t.Run(encoding, func(t *testing.T) {
			topic, group := "from-jaeger-"+encoding, "spanflow-"+encoding
			b := kafkatest.Start(t, topic, partitions)
			receiver := jaegertest.StartProducer(t, b.Addr, topic, encoding)
			sender, err := store.NewOTLP(config.OTLPStorage{Protocol: config.OTLPProtocolGRPC, Endpoint: receiver, Insecure: true,
				Timeout: config.Duration(10 * time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			defer sender.Close(context.Background())
			if err := sender.Write(context.Background(), otlpwire.RequestOf(tracetest.Corpus())); err != nil {
				t.Fatal(err)
			}

			cfg := testConfig(b.Addr, topic, group)
			cfg.Encoding = encoding
			got := &keepingWriter{all: ptrace.NewTraces()}
			r := startIngester(t, cfg, got)
			waitFor(t, 30*time.Second, fmt.Sprintf("%d spans", len(want)), func() bool { return got.spans() >= len(want) })
			// What the peer writes is what spanflow's own readers of these encodings take:
			// none of it is left to the libraries.
			if encoding == config.EncodingOTLPJSON || strings.HasPrefix(encoding, "jaeger") {
				if left := scrapeValue(t, r.admin, "spanflow_ingester_decode_library_total"); left != 0 {
					t.Errorf("%v messages Jaeger wrote went to the library (-1: not counted)", left)
				}
			}
			r.stop(t)
			keeps := tracetest.Keeps{}
			if strings.HasPrefix(encoding, "zipkin") {
				keeps = tracetest.Keeps{ResourceAsTags: true, LowerCaseNames: encoding == config.EncodingZipkinJSON}
			}
			for _, diff := range tracetest.Compare(want, tracetest.Views(got.all), keeps) {
				t.Error(diff)
			}
		})
	}
}

// keepingWriter keeps a copy of everything written.
type keepingWriter struct {
	mu  sync.Mutex
	all ptrace.Traces
}

func (w *keepingWriter) Write(_ context.Context, req otlpwire.Request) error {
	td, err := req.Traces()
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range td.ResourceSpans().Len() {
		td.ResourceSpans().At(i).CopyTo(w.all.ResourceSpans().AppendEmpty())
	}
	return nil
}

func (w *keepingWriter) spans() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.SpanCount()
}

func (w *keepingWriter) Close(context.Context) error { return nil }
