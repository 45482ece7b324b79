// Package jaegertest runs Jaeger v2 (built by hack/build-tools.sh into bin/tools) as a
// real peer of spanflow in tests: an OTLP trace backend with in-memory storage and its
// query API, or a producer that receives OTLP and writes it to Kafka with Jaeger's (the
// OpenTelemetry Collector's) Kafka exporter.
package jaegertest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/internal/testenv"
)

// Binary is the Jaeger v2 binary, built first if it is missing.
func Binary(t testing.TB) string {
	t.Helper()
	path := filepath.Join(testenv.RepoRoot(), "bin", "tools", "jaeger")
	if _, err := os.Stat(path); err != nil {
		if _, err := testenv.AssetsDir(); err != nil { // runs hack/build-tools.sh
			t.Fatal(err)
		}
	}
	return path
}

// start runs Jaeger with config (YAML) until the test ends; it stops within a second or
// two because the configs turn Jaeger's tracing of itself off.
func start(t testing.TB, config string) *exec.Cmd {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Binary(t), "--config", path)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return cmd
}

// waitListening waits until addr accepts connections.
func waitListening(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Jaeger did not listen on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// telemetry keeps Jaeger quiet and off every port but the configured ones.
const telemetry = `
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
`

// Backend is a Jaeger v2 with in-memory storage, receiving OTLP.
type Backend struct {
	// OTLPGRPC is host:port; OTLPHTTP is a base URL; Query is the HTTP API's base URL.
	OTLPGRPC, OTLPHTTP, Query string
}

// StartBackend starts Jaeger as an OTLP trace backend on loopback ports.
func StartBackend(t testing.TB) *Backend {
	t.Helper()
	grpcAddr, httpAddr, queryAddr, queryGRPC := testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t)
	start(t, fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
%s
extensions:
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false
    http:
      endpoint: %s
    grpc:
      endpoint: %s
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`, telemetry, queryAddr, queryGRPC, grpcAddr, httpAddr))
	for _, addr := range []string{grpcAddr, httpAddr, queryAddr} {
		waitListening(t, addr)
	}
	return &Backend{OTLPGRPC: grpcAddr, OTLPHTTP: "http://" + httpAddr, Query: "http://" + queryAddr}
}

func (b *Backend) get(path string, into any) (int, error) {
	resp, err := http.Get(b.Query + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s: %s: %s", path, resp.Status, data)
	}
	return resp.StatusCode, json.Unmarshal(data, into)
}

// Services is what /api/services lists.
func (b *Backend) Services() ([]string, error) {
	var out struct {
		Data []string `json:"data"`
	}
	_, err := b.get("/api/services", &out)
	return out.Data, err
}

// Trace is a trace as Jaeger's HTTP API (/api/traces/{id}) shows it.
type Trace struct {
	TraceID   string             `json:"traceID"`
	Spans     []Span             `json:"spans"`
	Processes map[string]Process `json:"processes"`
}

// Span is a span of a Trace.
type Span struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	OperationName string      `json:"operationName"`
	References    []Reference `json:"references"`
	Tags          []KeyValue  `json:"tags"`
	Logs          []struct {
		Fields []KeyValue `json:"fields"`
	} `json:"logs"`
	ProcessID string `json:"processID"`
}

// Reference is a span reference (CHILD_OF, FOLLOWS_FROM).
type Reference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// KeyValue is a tag or a log field.
type KeyValue struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// Process is a span's service and its tags.
type Process struct {
	ServiceName string     `json:"serviceName"`
	Tags        []KeyValue `json:"tags"`
}

// Trace reads /api/traces/{id}; found is false while Jaeger does not have it.
func (b *Backend) Trace(id pcommon.TraceID) (tr Trace, found bool, err error) {
	var out struct {
		Data []Trace `json:"data"`
	}
	code, err := b.get("/api/traces/"+id.String(), &out)
	if code == http.StatusNotFound {
		return Trace{}, false, nil
	}
	if err != nil || len(out.Data) == 0 {
		return Trace{}, false, err
	}
	return out.Data[0], true, nil
}

// TraceOTLP reads /api/v3/traces/{id}, which answers in OTLP JSON.
func (b *Backend) TraceOTLP(id pcommon.TraceID) (ptrace.Traces, bool, error) {
	var out struct {
		Result json.RawMessage `json:"result"`
	}
	code, err := b.get("/api/v3/traces/"+id.String(), &out)
	if code == http.StatusNotFound {
		return ptrace.Traces{}, false, nil
	}
	if err != nil {
		return ptrace.Traces{}, false, err
	}
	td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(out.Result)
	return td, err == nil, err
}

// StartProducer starts Jaeger as a collector that receives OTLP/gRPC and writes what it
// receives to topic on the Kafka brokers in encoding (otlp_proto, otlp_json, jaeger_proto,
// jaeger_json, zipkin_proto, zipkin_json), keyed by trace ID. It returns the OTLP/gRPC
// address.
func StartProducer(t testing.TB, broker, topic, encoding string) string {
	t.Helper()
	grpcAddr := testenv.FreeAddr(t)
	start(t, fmt.Sprintf(`service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [kafka]
%s
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
exporters:
  kafka:
    brokers: [%q]
    topic: %s
    encoding: %s
    partition_traces_by_id: true
`, telemetry, grpcAddr, broker, topic, encoding))
	waitListening(t, grpcAddr)
	return grpcAddr
}

// StartKafkaConsumer starts Jaeger as a collector that reads topic on the Kafka broker in
// encoding (its Kafka receiver, consumer group group, from the earliest offset) and either
// drops the spans (its nop exporter, when otlpEndpoint is empty) or batches and exports
// them over OTLP/gRPC with gzip to otlpEndpoint. It returns Jaeger's process.
func StartKafkaConsumer(t testing.TB, broker, topic, encoding, group, otlpEndpoint string) *exec.Cmd {
	t.Helper()
	pipeline, exporters := "exporters: [nop]", "  nop:\n"
	if otlpEndpoint != "" {
		pipeline = "processors: [batch]\n      exporters: [otlp]"
		exporters = fmt.Sprintf("  otlp:\n    endpoint: %s\n    compression: gzip\n    tls:\n      insecure: true\n", otlpEndpoint)
	}
	return start(t, fmt.Sprintf(`service:
  pipelines:
    traces:
      receivers: [kafka]
      %s
%s
receivers:
  kafka:
    brokers: [%q]
    group_id: %s
    initial_offset: earliest
    traces:
      topic: %s
      encoding: %s
processors:
  batch:
exporters:
%s`, pipeline, telemetry, broker, group, topic, encoding, exporters))
}
