package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/store"
)

func runInspect(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("inspect", "Summarize what a file store holds: spanflow inspect DIR\n(the directory of storage.file.path, e.g. ./spanflow-demo/spans).", stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	dir := fs.Arg(0)
	if info, err := os.Stat(dir); err != nil {
		return err
	} else if !info.IsDir() {
		return fmt.Errorf("%s is a file: inspect reads a store's directory (storage.file.path), such as %s", dir, filepath.Dir(dir))
	}
	s, err := summarize(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n  files     %d\n  traces    %d\n  spans     %d (distinct %d)\n  services  %d: %v\n", dir, s.files, s.traces, s.spans, s.distinct, len(s.services), s.services)
	if s.spans > 0 {
		fmt.Fprintf(stdout, "  time      %s … %s\n", s.first.UTC().Format(time.RFC3339), s.last.UTC().Format(time.RFC3339))
	}
	if s.files == 0 {
		fmt.Fprintln(stdout, "  (no span files here: a store's directory, storage.file.path, holds *.jsonl or *.jsonl.gz)")
	}
	if len(s.torn) > 0 {
		// Not an error: a crash mid-write leaves one, and what it cut was written again.
		fmt.Fprintf(stdout, "  torn      %d file(s) end in a write a crash cut short, skipped (never acknowledged, so written again): %v\n",
			len(s.torn), s.torn)
	}
	return nil
}

type storeSummary struct {
	files, traces, spans, distinct int
	torn                           []string
	services                       []string
	first, last                    time.Time
}

// summarize reads every file of a file store.
func summarize(dir string) (storeSummary, error) {
	var s storeSummary
	traces := map[[16]byte]bool{}
	seen := map[store.SpanKey]bool{}
	services := map[string]bool{}
	stats, err := store.ReadFiles(dir, func(td ptrace.Traces) error {
		rss := td.ResourceSpans()
		for i := range rss.Len() {
			if svc, ok := rss.At(i).Resource().Attributes().Get("service.name"); ok {
				services[svc.Str()] = true
			}
			sss := rss.At(i).ScopeSpans()
			for j := range sss.Len() {
				spans := sss.At(j).Spans()
				for k := range spans.Len() {
					span := spans.At(k)
					s.spans++
					traces[span.TraceID()] = true
					seen[store.SpanKey{Trace: span.TraceID(), Span: span.SpanID()}] = true
					start := span.StartTimestamp().AsTime()
					if s.first.IsZero() || start.Before(s.first) {
						s.first = start
					}
					if end := span.EndTimestamp().AsTime(); end.After(s.last) {
						s.last = end
					}
				}
			}
		}
		return nil
	})
	for svc := range services {
		s.services = append(s.services, svc)
	}
	slices.Sort(s.services)
	s.traces, s.distinct = len(traces), len(seen)
	s.files, s.torn = stats.Files, stats.Torn
	return s, err
}
