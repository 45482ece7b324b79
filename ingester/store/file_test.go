package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/otlpwire"
)

func tracesWithIDs(first, n int) ptrace.Traces {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	for i := first; i < first+n; i++ {
		s := ss.Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID{byte(i >> 8), byte(i), 1})
		s.SetSpanID(pcommon.SpanID{byte(i >> 8), byte(i), 1})
	}
	return td
}

func TestFileStore(t *testing.T) {
	for _, gz := range []bool{false, true} {
		dir := t.TempDir()
		s, err := NewFile(dir, 2048, gz) // small files: rotation happens
		if err != nil {
			t.Fatal(err)
		}
		dirSyncs := 0
		s.syncDir = func(d string) error {
			if d != dir {
				t.Errorf("synced %s, not the store's directory", d)
			}
			dirSyncs++
			return syncDir(d)
		}
		for b := range 40 {
			if err := s.Write(context.Background(), otlpwire.RequestOf(tracesWithIDs(b*10, 10))); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		if len(files) < 2 {
			t.Errorf("gzip %v: %d files, want rotation", gz, len(files))
		}
		if dirSyncs != len(files) {
			t.Errorf("gzip %v: the directory was synced %d times for %d new files", gz, dirSyncs, len(files))
		}
		if gz && filepath.Ext(files[0]) != ".gz" {
			t.Errorf("gzip files named %s", files[0])
		}
		distinct, dups, err := CountFiles(dir)
		if err != nil || distinct != 400 || dups != 0 {
			t.Errorf("gzip %v: read back %d spans (%d repeated), err %v", gz, distinct, dups, err)
		}
	}
}

// TestGzipFileSurvivesCrash: a process killed after a write leaves a gzip file without
// its trailer; everything written (flushed and synced) before is still read back.
func TestGzipFileSurvivesCrash(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFile(dir, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	for b := range 5 {
		if err := s.Write(context.Background(), otlpwire.RequestOf(tracesWithIDs(b*3, 3))); err != nil {
			t.Fatal(err)
		}
	}
	// No Close: as after SIGKILL. Copy what is on disk now.
	files, _ := filepath.Glob(filepath.Join(dir, "*.gz"))
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	crashed := t.TempDir()
	if err := os.WriteFile(filepath.Join(crashed, filepath.Base(files[0])), data, 0o600); err != nil {
		t.Fatal(err)
	}
	distinct, _, err := CountFiles(crashed)
	if err != nil || distinct != 15 {
		t.Errorf("after a crash read %d of 15 acknowledged spans, err %v", distinct, err)
	}
	_ = s.Close(context.Background())
}
