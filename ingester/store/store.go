// Package store holds the writers that put decoded traces into trace storage.
package store

import (
	"context"
	"fmt"
	"sync/atomic"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
)

// Writer writes traces; a nil error means they are durably stored.
type Writer interface {
	Write(ctx context.Context, traces ptrace.Traces) error
	// Close flushes and releases the writer.
	Close(ctx context.Context) error
}

// New returns the writer the storage config names.
func New(cfg config.Storage) (Writer, error) {
	switch cfg.Type {
	case config.StorageBlackhole:
		return &Blackhole{}, nil
	case config.StorageFile:
		return NewFile(cfg.File.Path, cfg.File.MaxFileBytes, cfg.File.Gzip)
	case config.StorageOTLP:
		return NewOTLP(cfg.OTLP)
	default:
		return nil, fmt.Errorf("unsupported storage type %q", cfg.Type)
	}
}

// Blackhole counts spans and drops them.
type Blackhole struct {
	spans atomic.Int64
}

// Write counts the spans.
func (b *Blackhole) Write(_ context.Context, traces ptrace.Traces) error {
	b.spans.Add(int64(traces.SpanCount()))
	return nil
}

// Close does nothing.
func (b *Blackhole) Close(context.Context) error { return nil }

// Spans returns the number of spans written so far.
func (b *Blackhole) Spans() int64 { return b.spans.Load() }
