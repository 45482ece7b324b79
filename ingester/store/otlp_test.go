package store

import (
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/processor"
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
	cfg.Headers = map[string]string{"x-api-key": "${env:OTLP_API_KEY}", "x-tenant": "shop"}
	w, err := NewOTLP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background())
	ctx := context.Background()
	if err := w.Write(ctx, someTraces(5)); err != nil {
		t.Fatal(err)
	}
	if sink.spans != 5 || sink.headers.Get("x-api-key")[0] != "k3y" || sink.headers.Get("x-tenant")[0] != "shop" {
		t.Errorf("sink got %d spans, headers %v", sink.spans, sink.headers)
	}
	cases := []struct {
		err       error
		partial   int64
		permanent bool
	}{
		{status.Error(codes.Unavailable, "restarting"), 0, false},
		{status.Error(codes.ResourceExhausted, "slow down"), 0, false},
		{status.Error(codes.InvalidArgument, "bad span"), 0, true},
		{status.Error(codes.Unauthenticated, "who are you"), 0, true},
		{nil, 2, false}, // partial success
	}
	for _, tc := range cases {
		sink.mu.Lock()
		sink.fail, sink.partial = tc.err, tc.partial
		sink.mu.Unlock()
		err := w.Write(ctx, someTraces(1))
		if err == nil || processor.IsPermanent(err) != tc.permanent {
			t.Errorf("%v / partial %d: err %v, permanent %v", tc.err, tc.partial, err, processor.IsPermanent(err))
		}
	}
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
	if err := w.Write(context.Background(), someTraces(4)); err != nil || spans != 4 {
		t.Fatalf("err %v, %d spans", err, spans)
	}
	for c, permanent := range map[int]bool{http.StatusServiceUnavailable: false, http.StatusTooManyRequests: false, http.StatusBadRequest: true, http.StatusForbidden: true} {
		mu.Lock()
		code = c
		mu.Unlock()
		err := w.Write(context.Background(), someTraces(1))
		if err == nil || processor.IsPermanent(err) != permanent {
			t.Errorf("HTTP %d: err %v, permanent %v", c, err, processor.IsPermanent(err))
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
}
