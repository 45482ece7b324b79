package ingester

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/spanflow/spanflow/ingester/loadreport"
	"github.com/spanflow/spanflow/ingester/otlpwire"
	"github.com/spanflow/spanflow/internal/kafkatest"
)

// slowWriter takes latency per write, as a storage a network away does, and fails every
// write while failing is set.
type slowWriter struct {
	latency time.Duration
	failing atomic.Bool
	spans   atomic.Int64
}

func (w *slowWriter) Write(ctx context.Context, req otlpwire.Request) error {
	select {
	case <-time.After(w.latency):
	case <-ctx.Done():
		return ctx.Err()
	}
	if w.failing.Load() {
		return errors.New("storage unavailable")
	}
	w.spans.Add(int64(req.Spans))
	return nil
}

func (w *slowWriter) Close(context.Context) error { return nil }

// TestCommitsCarryTheLoadReport: every commit carries the pod's load report, which the
// operator reads back with the committed offsets. Busy, it reports a rate and occupied
// delivery slots; idle, the offsets are committed again with a fresh report of no work;
// with storage failing (writes retried) it reports that consumption is blocked
// downstream.
func TestCommitsCarryTheLoadReport(t *testing.T) {
	const topic, group, parts = "otlp_spans", "load-report", 4
	b := kafkatest.Start(t, topic, parts)
	cfg := testConfig(b.Addr, topic, group)
	fastRetries(&cfg)
	// Writes are retried for longer than the test lasts: blocked must show while they
	// are, before any partition is held.
	cfg.Processing.Retry.Attempts = 10_000
	cfg.Parallelism = 2
	cfg.Processing.BatchSize = 10
	writer := &slowWriter{latency: 20 * time.Millisecond}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Writer: writer, LoadReportInterval: 300 * time.Millisecond}, testr.New(t))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ingester: %v", err)
		}
	}()
	host, _ := os.Hostname()
	// latest is the newest report committed on any partition.
	latest := func() (loadreport.Report, bool) {
		var newest loadreport.Report
		found := false
		for p, md := range b.CommittedMetadata(t, group, topic, parts) {
			r, ok := loadreport.Parse(md)
			if !ok {
				if md != "" {
					t.Fatalf("partition %d: metadata %q is not a load report", p, md)
				}
				continue
			}
			if !found || r.At.After(newest.At) {
				newest, found = r, true
			}
		}
		return newest, found
	}

	stop := make(chan struct{})
	produced := produceSteadily(t, b, topic, 20, 20*time.Millisecond, stop)
	var busy loadreport.Report
	waitFor(t, 30*time.Second, "a report of work", func() bool {
		r, ok := latest()
		busy = r
		return ok && r.Rate > 0 && r.Busy > 0.2
	})
	if busy.Pod != host || busy.Parallelism != 2 || busy.Slots < 1.99 || busy.Slots > 2.01 || busy.Blocked || busy.CPU < 0 || busy.CPU > 1 || busy.Busy > 1 {
		t.Errorf("report while busy: %+v (pod %q expected)", busy, host)
	}
	close(stop)
	total := <-produced
	waitFor(t, 60*time.Second, "every span", func() bool { return writer.spans.Load() == int64(2*total) })

	// Idle: nothing moves, yet the report is renewed.
	var idle loadreport.Report
	waitFor(t, 30*time.Second, "a report of no work", func() bool {
		r, ok := latest()
		idle = r
		return ok && r.Rate == 0 && r.Busy == 0
	})
	time.Sleep(time.Second)
	if r, _ := latest(); !r.At.After(idle.At) {
		t.Errorf("no report renewed while idle: still %v after a second", r.At)
	}

	writer.failing.Store(true)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 1_000_000, 40, 2)...)
	waitFor(t, 30*time.Second, "a report of blocked consumption", func() bool {
		r, ok := latest()
		return ok && r.Blocked
	})
	writer.failing.Store(false)
	waitFor(t, 30*time.Second, "the spans after the outage", func() bool { return writer.spans.Load() == int64(2*total+80) })
}
