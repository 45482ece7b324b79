package store

import (
	"bufio"

	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/failure"
	"github.com/spanflow/spanflow/ingester/otlpwire"
)

// fileExt is the extension of the files the file store writes; gzipped ones add gzipExt.
const (
	fileExt = ".jsonl"
	gzipExt = ".gz"
)

// File writes each batch as one line of OTLP JSON to a file in a directory, and fsyncs it
// before the batch counts as written. Files rotate by size; names sort by creation, so
// reading them in name order replays the writes in order. With gzip, each batch is
// flushed as a complete deflate block before the sync, so a crash loses only what was
// never acknowledged.
type File struct {
	dir     string
	maxSize int64
	gzip    bool

	mu      sync.Mutex
	f       *os.File
	zw      *gzip.Writer
	size    int64 // bytes on disk in the current file
	seq     int
	marshal ptrace.JSONMarshaler
	// syncDir makes a new file's directory entry durable; a test counts its calls.
	syncDir func(dir string) error
}

// NewFile opens a file store in dir, creating the directory if needed.
func NewFile(dir string, maxSize int64, compress bool) (*File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("file store: %w", err)
	}
	return &File{dir: dir, maxSize: maxSize, gzip: compress, syncDir: syncDir}, nil
}

// syncDir fsyncs a directory: without it, a file created just before a crash may be gone
// after it, though its contents were synced and the batch acknowledged.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// countingWriter counts the bytes that reach the file.
type countingWriter struct {
	w io.Writer
	n *int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

// Write appends the request's traces as one line of OTLP JSON and syncs the file.
func (s *File) Write(_ context.Context, req otlpwire.Request) error {
	traces, err := req.Traces()
	if err != nil {
		return failure.Permanent(fmt.Errorf("file store: decoding: %w", err))
	}
	line, err := s.marshal.MarshalTraces(traces)
	if err != nil {
		return fmt.Errorf("file store: encoding: %w", err)
	}
	line = append(line, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil || s.size >= s.maxSize {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	if s.zw != nil {
		_, err = s.zw.Write(line)
		if err == nil {
			err = s.zw.Flush()
		}
	} else {
		_, err = countingWriter{s.f, &s.size}.Write(line)
	}
	if err != nil {
		// A torn line is skipped by readers; close so the next write starts a fresh file.
		s.closeCurrent()
		return fmt.Errorf("file store: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		s.closeCurrent()
		return fmt.Errorf("file store: sync: %w", err)
	}
	return nil
}

func (s *File) rotate() error {
	s.closeCurrent()
	s.seq++
	// Pid and nanoseconds keep names unique across restarts and concurrent writers.
	name := fmt.Sprintf("spans-%s-%d-%06d%s", time.Now().UTC().Format("20060102T150405.000000000"), os.Getpid(), s.seq, fileExt)
	if s.gzip {
		name += gzipExt
	}
	f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("file store: %w", err)
	}
	if err := s.syncDir(s.dir); err != nil {
		_ = f.Close()
		return fmt.Errorf("file store: syncing %s: %w", s.dir, err)
	}
	s.f, s.size = f, 0
	if s.gzip {
		s.zw = gzip.NewWriter(countingWriter{f, &s.size})
	}
	return nil
}

func (s *File) closeCurrent() {
	if s.zw != nil {
		_ = s.zw.Close() // the gzip trailer
		s.zw = nil
	}
	if s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
}

// Close closes the current file.
func (s *File) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.zw != nil {
		err = s.zw.Close()
		s.zw = nil
	}
	if s.f != nil {
		err = errors.Join(err, s.f.Sync(), s.f.Close())
		s.f = nil
	}
	return err
}

// ReadFiles calls fn with the traces of every complete line of every file in dir, in
// write order, and returns the files read. A line cut short by a crash is skipped: its
// batch was never acknowledged, so its messages were not committed and were written
// again. The files that end so are named in ReadStats.Torn.
func ReadFiles(dir string, fn func(ptrace.Traces) error) (ReadStats, error) {
	var stats ReadStats
	names, err := filepath.Glob(filepath.Join(dir, "*"+fileExt))
	if err != nil {
		return stats, err
	}
	gzipped, err := filepath.Glob(filepath.Join(dir, "*"+fileExt+gzipExt))
	if err != nil {
		return stats, err
	}
	names = append(names, gzipped...)
	sort.Strings(names)
	var unmarshal ptrace.JSONUnmarshaler
	for _, name := range names {
		torn, err := readFile(name, &unmarshal, fn)
		if err != nil {
			return stats, fmt.Errorf("%s: %w", name, err)
		}
		stats.Files++
		if torn {
			stats.Torn = append(stats.Torn, name)
		}
	}
	return stats, nil
}

// ReadStats says what ReadFiles read.
type ReadStats struct {
	Files int
	// Torn are the files whose end a crash cut short (a line, or a gzip stream, without
	// its end): what is there was never acknowledged, and was written again.
	Torn []string
}

// readFile reads one file; torn is true when it ends in an unfinished write.
func readFile(name string, unmarshal *ptrace.JSONUnmarshaler, fn func(ptrace.Traces) error) (torn bool, err error) {
	f, err := os.Open(name)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var src io.Reader = f
	if strings.HasSuffix(name, gzipExt) {
		zr, err := gzip.NewReader(f)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return true, nil // created, then the process died before the first flush
		}
		if err != nil {
			return false, err
		}
		src = zr
	}
	r := bufio.NewReaderSize(src, 1<<20)
	for {
		line, err := r.ReadString('\n')
		// A gzip file cut short by a crash ends in ErrUnexpectedEOF after its last flush:
		// like a torn last line, what follows was never acknowledged.
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return line != "" || errors.Is(err, io.ErrUnexpectedEOF), nil // a last line without newline is torn
		}
		if err != nil {
			return false, err
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		td, err := unmarshal.UnmarshalTraces([]byte(line))
		if err != nil {
			return false, fmt.Errorf("corrupt line: %w", err)
		}
		if err := fn(td); err != nil {
			return false, err
		}
	}
}

// CountFiles counts the distinct spans in the files of dir and how many writes of a span
// repeated an earlier one (at-least-once delivery writes a span again after a crash).
func CountFiles(dir string) (distinct, duplicates int, err error) {
	seen := map[SpanKey]int{}
	_, err = ReadFiles(dir, func(td ptrace.Traces) error {
		for key := range SpanKeys(td) {
			seen[key]++
		}
		return nil
	})
	for _, n := range seen {
		distinct++
		duplicates += n - 1
	}
	return distinct, duplicates, err
}
