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

// decodeError marks an error as the message's bytes being undecodable, which the failure
// policy treats by onDecodeError; it is also permanent.
type decodeError struct{ err error }

func (e decodeError) Error() string { return e.err.Error() }
func (e decodeError) Unwrap() error { return e.err }

// DecodeFailure marks err as an undecodable message: permanent, and subject to onDecodeError.
func DecodeFailure(err error) error {
	if err == nil {
		return nil
	}
	return Permanent(decodeError{err})
}

// IsDecodeFailure reports whether err marks an undecodable message.
func IsDecodeFailure(err error) bool {
	var d decodeError
	return errors.As(err, &d)
}
