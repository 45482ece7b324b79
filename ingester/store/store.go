// Package store holds the writers that put spans, as OTLP requests, into trace storage.
package store

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/otlpwire"
)

// Writer writes a request's spans; a nil error means they are durably stored. It keeps
// nothing of the request's bytes after Write returns.
type Writer interface {
	Write(ctx context.Context, req otlpwire.Request) error
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
func (b *Blackhole) Write(_ context.Context, req otlpwire.Request) error {
	b.spans.Add(int64(req.Spans))
	return nil
}

// Close does nothing.
func (b *Blackhole) Close(context.Context) error { return nil }

// Spans returns the number of spans written so far.
func (b *Blackhole) Spans() int64 { return b.spans.Load() }
