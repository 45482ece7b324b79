// Package processor defines the unit of ingestion work — Process(ctx, message) — and the
// decorators that wrap it. Each decorator does one thing; Chain assembles them in order.
package processor

import (
	"context"
	"errors"

	"github.com/segmentio/kafka-go"
)

// Processor handles one Kafka message. A nil error means the message's spans are durably
// written and its offset may be committed.
type Processor interface {
	Process(ctx context.Context, msg kafka.Message) error
}

// Func adapts a function to a Processor.
type Func func(ctx context.Context, msg kafka.Message) error

// Process calls f.
func (f Func) Process(ctx context.Context, msg kafka.Message) error { return f(ctx, msg) }

// permanentError marks an error that retrying cannot fix, such as undecodable bytes.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
