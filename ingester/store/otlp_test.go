package store

import (
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/failure"
	"github.com/spanflow/spanflow/ingester/otlpwire"
)

func someTraces(n int) ptrace.Traces {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	for range n {
		ss.Spans().AppendEmpty().SetName("op")
	}
	return td
}

// grpcSink is an OTLP/gRPC backend that records spans and headers and can be told to fail.
type grpcSink struct {
	ptraceotlp.UnimplementedGRPCServer
	mu      sync.Mutex
	spans   int
	headers metadata.MD
	fail    error
	partial int64
}

func (s *grpcSink) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.headers, _ = metadata.FromIncomingContext(ctx)
	resp := ptraceotlp.NewExportResponse()
	if s.fail != nil {
		return resp, s.fail
	}
	s.spans += req.Traces().SpanCount()
	if s.partial > 0 {
		resp.PartialSuccess().SetRejectedSpans(s.partial)
		resp.PartialSuccess().SetErrorMessage("too old")
	}
	return resp, nil
}

func startGRPCSink(t *testing.T) (*grpcSink, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	sink := &grpcSink{}
	ptraceotlp.RegisterGRPCServer(srv, sink)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return sink, l.Addr().String()
}

func otlpConfig(endpoint, protocol string) config.OTLPStorage {
	c := config.Default().Storage.OTLP
	c.Endpoint, c.Protocol, c.Insecure = endpoint, protocol, true
	c.Timeout = config.Duration(5 * time.Second)
	return c
}

func TestOTLPGRPC(t *testing.T) {
	sink, addr := startGRPCSink(t)
	t.Setenv("OTLP_API_KEY", "k3y")
	cfg := otlpConfig(addr, config.OTLPProtocolGRPC)
	t.Setenv("OTLP_TENANT", "shop")
	cfg.Headers = map[string]string{"x-api-key": "${env:OTLP_API_KEY}", "x-tenant": "${env:OTLP_TENANT}", "authorization": "Bearer ${env:OTLP_API_KEY}"}
	w, err := NewOTLP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background())
	ctx := context.Background()
	if err := w.Write(ctx, otlpwire.RequestOf(someTraces(5))); err != nil {
		t.Fatal(err)
	}
	if sink.spans != 5 || sink.headers.Get("x-api-key")[0] != "k3y" || sink.headers.Get("x-tenant")[0] != "shop" ||
		sink.headers.Get("authorization")[0] != "Bearer k3y" {
		t.Errorf("sink got %d spans, headers %v", sink.spans, sink.headers)
	}
	throttled, _ := status.New(codes.ResourceExhausted, "slow down, request size too large for the rate").
		WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
	cases := []struct {
		err     error
		partial int64
		want    string
	}{
		{status.Error(codes.Unavailable, "restarting"), 0, "transient"},
		{status.Error(codes.ResourceExhausted, "slow down"), 0, "transient"},
		{throttled.Err(), 0, "transient"},
		{status.Error(codes.ResourceExhausted, "grpc: received message larger than max (5000000 vs. 4194304)"), 0, "too large"},
		{status.Error(codes.InvalidArgument, "bad span"), 0, "permanent"},
		// The backend's state, never the message's fault: retried, never dead-lettered.
		{status.Error(codes.Unauthenticated, "who are you"), 0, "transient"},
		{status.Error(codes.PermissionDenied, "not yours"), 0, "transient"},
		{status.Error(codes.Internal, "oops"), 0, "transient"},
		{nil, 2, "rejected"}, // partial success
	}
	for _, tc := range cases {
		sink.mu.Lock()
		sink.fail, sink.partial = tc.err, tc.partial
		sink.mu.Unlock()
		err := w.Write(ctx, otlpwire.RequestOf(someTraces(1)))
		if got := failureKind(err); got != tc.want {
			t.Errorf("%v / partial %d: err %v is %s, want %s", tc.err, tc.partial, err, got, tc.want)
		}
	}
	if r := failure.AsRejected(w.Write(ctx, otlpwire.RequestOf(someTraces(1)))); r == nil || r.Spans != 2 || r.Message == "" {
		t.Errorf("partial success reported as %+v", r)
	}
	// The room the codec handed the pieces to gRPC in is kept for the next request, not the
	// pieces: they are the messages' bytes, given back once the write returns.
	for range 4 {
		scratch := marshalScratches.Get().(*marshalScratch)
		if slices.ContainsFunc(scratch.buffers[:cap(scratch.buffers)], func(b mem.SliceBuffer) bool { return b != nil }) ||
			slices.ContainsFunc(scratch.pieces[:cap(scratch.pieces)], func(b mem.Buffer) bool { return b != nil }) {
			t.Fatal("a pooled scratch of the gRPC codec still holds the pieces of a request sent")
		}
	}
}

// failureKind names what the chain makes of a writer's error.
func failureKind(err error) string {
	switch {
	case err == nil:
		return "success"
	case failure.AsRejected(err) != nil:
		return "rejected"
	case failure.IsTooLarge(err):
		return "too large"
	case failure.IsPermanent(err):
		return "permanent"
	}
	return "transient"
}

func TestOTLPHTTP(t *testing.T) {
	var mu sync.Mutex
	spans, code := 0, http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || r.Header.Get("Authorization") != "Bearer t" {
			http.Error(w, "wrong request", http.StatusBadRequest)
			return
		}
		body := io.Reader(r.Body)
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		data, _ := io.ReadAll(body)
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(data); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if code != http.StatusOK {
			w.WriteHeader(code)
			return
		}
		spans += req.Traces().SpanCount()
	}))
	defer srv.Close()
	cfg := otlpConfig(srv.URL, config.OTLPProtocolHTTP)
	cfg.Headers = map[string]string{"Authorization": "Bearer t"}
	w, err := NewOTLP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background())
	if err := w.Write(context.Background(), otlpwire.RequestOf(someTraces(4))); err != nil || spans != 4 {
		t.Fatalf("err %v, %d spans", err, spans)
	}
	for c, want := range map[int]string{
		http.StatusServiceUnavailable: "transient", http.StatusTooManyRequests: "transient", http.StatusInternalServerError: "transient",
		http.StatusUnauthorized: "transient", http.StatusForbidden: "transient", http.StatusNotFound: "transient",
		http.StatusBadRequest: "permanent", http.StatusRequestEntityTooLarge: "too large",
	} {
		mu.Lock()
		code = c
		mu.Unlock()
		err := w.Write(context.Background(), otlpwire.RequestOf(someTraces(1)))
		if got := failureKind(err); got != want {
			t.Errorf("HTTP %d: err %v is %s, want %s", c, err, got, want)
		}
	}
}

func TestOTLPConfigErrors(t *testing.T) {
	cfg := otlpConfig("127.0.0.1:4317", config.OTLPProtocolGRPC)
	cfg.Headers = map[string]string{"x-api-key": "${env:SPANFLOW_TEST_UNSET_VARIABLE}"}
	if _, err := NewOTLP(cfg); err == nil {
		t.Error("a header from an unset variable was accepted")
	}
	if _, err := NewOTLP(otlpConfig("not a url", config.OTLPProtocolHTTP)); err == nil {
		t.Error("an HTTP endpoint that is not a URL was accepted")
	}
	// A value no header can carry is refused at start-up (not every write failing for
	// good), and not shown: it may be a credential.
	t.Setenv("SPANFLOW_TEST_TOKEN", "Bearer s3cret\x01")
	cfg.Headers = map[string]string{"authorization": "${env:SPANFLOW_TEST_TOKEN}"}
	if _, err := NewOTLP(cfg); err == nil || !strings.Contains(err.Error(), "storage.otlp.headers[authorization]") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a header value with a control character: %v", err)
	}
}
