package store

import (
	"context"
	"fmt"
	"iter"
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/failure"
	"github.com/spanflow/spanflow/ingester/otlpwire"
)

// SpanKey identifies a span: its trace ID and span ID.
type SpanKey struct {
	Trace pcommon.TraceID
	Span  pcommon.SpanID
}

// Memory keeps the identity of every span written, counting repeats, and can be told to
// fail, to play a storage outage in tests.
type Memory struct {
	mu     sync.Mutex
	spans  map[SpanKey]int
	writes int
	fail   error
	refuse func(SpanKey) error
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{spans: map[SpanKey]int{}} }

// Write records the spans, or returns the failure set with FailWith.
func (m *Memory) Write(_ context.Context, req otlpwire.Request) error {
	traces, err := req.Traces()
	if err != nil {
		return failure.Permanent(fmt.Errorf("memory store: %w", err))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if m.refuse != nil {
		for key := range SpanKeys(traces) {
			if err := m.refuse(key); err != nil {
				return err
			}
		}
	}
	m.writes++
	for key := range SpanKeys(traces) {
		m.spans[key]++
	}
	return nil
}

// SpanKeys yields the identity of every span in traces.
func SpanKeys(traces ptrace.Traces) iter.Seq[SpanKey] {
	return func(yield func(SpanKey) bool) {
		rss := traces.ResourceSpans()
		for i := range rss.Len() {
			sss := rss.At(i).ScopeSpans()
			for j := range sss.Len() {
				spans := sss.At(j).Spans()
				for k := range spans.Len() {
					if !yield(SpanKey{Trace: spans.At(k).TraceID(), Span: spans.At(k).SpanID()}) {
						return
					}
				}
			}
		}
	}
}

// FailWith makes every Write fail with err until FailWith(nil).
func (m *Memory) FailWith(err error) {
	m.mu.Lock()
	m.fail = err
	m.mu.Unlock()
}

// RefuseWhen makes a Write fail with what refuse returns for one of its spans, storing
// none of them, until RefuseWhen(nil): a backend refusing particular spans.
func (m *Memory) RefuseWhen(refuse func(SpanKey) error) {
	m.mu.Lock()
	m.refuse = refuse
	m.mu.Unlock()
}

// Close does nothing.
func (m *Memory) Close(context.Context) error { return nil }

// Counts returns the number of distinct spans written and how many writes of a span
// repeated an earlier one.
func (m *Memory) Counts() (distinct, duplicates int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.spans {
		distinct++
		duplicates += n - 1
	}
	return distinct, duplicates
}

// Has reports whether the span was written.
func (m *Memory) Has(key SpanKey) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.spans[key] > 0
}
