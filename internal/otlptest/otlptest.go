// Package otlptest is an OTLP/gRPC trace backend for tests and benchmarks: it keeps the
// identity of every span it accepts and can be told to refuse them.
package otlptest

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"

	"github.com/spanflow/spanflow/ingester/otlpwire"
	"github.com/spanflow/spanflow/ingester/store"
)

// Sink is the backend.
type Sink struct {
	ptraceotlp.UnimplementedGRPCServer
	// Addr is where it listens, host:port on loopback.
	Addr string
	// Received holds every accepted span's identity, counting repeats.
	Received *store.Memory

	count    atomic.Int64
	requests atomic.Int64
	mu       sync.Mutex
	fail     error
	latency  time.Duration
}

// Start starts a sink that keeps identities and stops when the test ends.
func Start(t testing.TB) *Sink { return start(t, store.NewMemory()) }

// StartCounting starts a sink that only counts spans (Received is nil): the cheapest
// backend there is, for benchmarks.
func StartCounting(t testing.TB) *Sink { return start(t, nil) }

func start(t testing.TB, received *store.Memory) *Sink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sink{Addr: l.Addr().String(), Received: received}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20)) // Jaeger's batch processor sends up to 8192 spans at once
	ptraceotlp.RegisterGRPCServer(srv, s)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return s
}

// FailWith makes every export fail with err (a gRPC status error, for example) until
// FailWith(nil).
func (s *Sink) FailWith(err error) {
	s.mu.Lock()
	s.fail = err
	s.mu.Unlock()
}

// SetLatency makes every export take d first, as a storage a network away does.
func (s *Sink) SetLatency(d time.Duration) {
	s.mu.Lock()
	s.latency = d
	s.mu.Unlock()
}

// Export accepts the spans, or fails as told.
func (s *Sink) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	s.mu.Lock()
	fail, latency := s.fail, s.latency
	s.mu.Unlock()
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-ctx.Done():
			return ptraceotlp.NewExportResponse(), ctx.Err()
		}
	}
	if fail != nil {
		return ptraceotlp.NewExportResponse(), fail
	}
	s.count.Add(int64(req.Traces().SpanCount()))
	s.requests.Add(1)
	if s.Received == nil {
		return ptraceotlp.NewExportResponse(), nil
	}
	return ptraceotlp.NewExportResponse(), s.Received.Write(ctx, otlpwire.RequestOf(req.Traces()))
}

// Requests is the number of export requests accepted.
func (s *Sink) Requests() int { return int(s.requests.Load()) }

// Spans is the number of distinct spans accepted (of spans accepted, when counting only).
func (s *Sink) Spans() int {
	if s.Received == nil {
		return int(s.count.Load())
	}
	n, _ := s.Received.Counts()
	return n
}
