package eventlog

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
)

func TestRepeatedLogsFirstThenSummaries(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		lines = append(lines, args)
		mu.Unlock()
	}, funcr.Options{})
	r := Error(log, "Dead-lettered", 50*time.Millisecond)
	for i := range 1000 {
		r.Event(errors.New("bad bytes"), "offset", i)
	}
	mu.Lock()
	if len(lines) != 1 || !strings.Contains(lines[0], `"offset"=0`) || !strings.Contains(lines[0], `"count"=1`) {
		t.Errorf("at once: %q, want the first event alone", lines)
	}
	mu.Unlock()
	// The quiet tail is summarized when the interval is over, without another event.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(lines)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no summary of the other 999 events: %q", lines)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.Event(nil, "offset", 1000)
	r.Close()
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(lines[1], `"count"=999`) || !strings.Contains(lines[1], `"offset"=999`) || !strings.Contains(lines[1], "bad bytes") {
		t.Errorf("summary %q, want the count and the latest event", lines[1])
	}
	if len(lines) != 3 || !strings.Contains(lines[2], `"offset"=1000`) {
		t.Errorf("after Close: %q, want the last event written", lines)
	}
}
