package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestEndpoints(t *testing.T) {
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector())
	var ready atomic.Bool
	s, err := Listen("127.0.0.1:0", registry, func() error {
		if !ready.Load() {
			return errors.New("not a member of the consumer group yet")
		}
		return nil
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	base := "http://" + s.Addr()

	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "consumer group") {
		t.Errorf("/readyz before ready: %d %q", code, body)
	}
	ready.Store(true)
	if code, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz when ready: %d", code)
	}
	if code, body := get(t, base+"/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics: %d", code)
	}
	if code, _ := get(t, base+"/debug/pprof/cmdline"); code != http.StatusNotFound {
		t.Errorf("the profiler is served though profiling is off: %d", code)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}

func TestProfilingWhenAskedFor(t *testing.T) {
	s, err := Listen("127.0.0.1:0", prometheus.NewRegistry(), func() error { return nil }, true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	if code, _ := get(t, "http://"+s.Addr()+"/debug/pprof/cmdline"); code != http.StatusOK {
		t.Errorf("/debug/pprof with profiling on: %d", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}
