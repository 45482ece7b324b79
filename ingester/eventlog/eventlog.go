// Package eventlog logs events that can repeat thousands of times a second (dead letters,
// skipped messages, refused spans, fetch errors) without flooding the log and without
// losing them to sampling: the first one at once, then at most one summary line per
// interval that counts what happened since and shows the latest one.
package eventlog

import (
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// Repeated is one kind of event. It is safe for concurrent use.
type Repeated struct {
	log   logr.Logger
	msg   string
	every time.Duration
	err   bool

	mu       sync.Mutex
	logged   time.Time // when the last line was written
	count    int       // events since then, not yet logged
	last     []any     // key-values of the latest of them
	lastErr  error
	flushing *time.Timer // writes the summary of a quiet tail
	closed   bool
}

// Info returns a Repeated logging msg at info level, at most once per every.
func Info(log logr.Logger, msg string, every time.Duration) *Repeated {
	return &Repeated{log: log, msg: msg, every: every}
}

// Error returns a Repeated logging msg at error level, at most once per every.
func Error(log logr.Logger, msg string, every time.Duration) *Repeated {
	return &Repeated{log: log, msg: msg, every: every, err: true}
}

// Event records one event with its key-values (and, for Error, its error).
func (r *Repeated) Event(err error, keysAndValues ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.count == 0 && now.Sub(r.logged) >= r.every {
		r.logged = now
		r.write(1, err, keysAndValues)
		return
	}
	r.count++
	r.last, r.lastErr = keysAndValues, err
	if r.flushing == nil && !r.closed {
		r.flushing = time.AfterFunc(r.every-now.Sub(r.logged), r.flush)
	}
}

func (r *Repeated) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushing = nil
	if r.count == 0 {
		return
	}
	r.logged = time.Now()
	r.write(r.count, r.lastErr, r.last)
	r.count, r.last, r.lastErr = 0, nil, nil
}

func (r *Repeated) write(count int, err error, keysAndValues []any) {
	kv := append([]any{"count", count}, keysAndValues...)
	if r.err {
		r.log.Error(err, r.msg, kv...)
		return
	}
	if err != nil {
		kv = append(kv, "error", err.Error())
	}
	r.log.Info(r.msg, kv...)
}

// Close writes the summary of what is not yet logged and stops the timer.
func (r *Repeated) Close() {
	r.mu.Lock()
	r.closed = true
	if r.flushing != nil {
		r.flushing.Stop()
		r.flushing = nil
	}
	r.mu.Unlock()
	r.flush()
}
