// Package failure names the kinds of error the ingester's parts tell each other apart by:
// what retrying cannot fix, what is a message's own fault, what is too large to send at
// once, and what a backend accepted only in part. Decoders, writers and the processor
// chain all import it; none of them imports another for it.
package failure

import (
	"errors"
	"fmt"
)

// permanentError marks an error that retrying the same request cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: the backend refused this data for good
// (a bad request), as opposed to being down, throttling or refusing credentials.
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

// decodeError marks a message whose bytes cannot be decoded.
type decodeError struct{ err error }

func (e decodeError) Error() string { return e.err.Error() }
func (e decodeError) Unwrap() error { return e.err }

// Decode marks err as an undecodable message: permanent, and subject to onDecodeError.
func Decode(err error) error {
	if err == nil {
		return nil
	}
	return Permanent(decodeError{err})
}

// IsDecode reports whether err marks an undecodable message.
func IsDecode(err error) bool {
	var d decodeError
	return errors.As(err, &d)
}

// tooLargeError marks a request the backend (or the transport) refused for its size.
type tooLargeError struct{ err error }

func (e tooLargeError) Error() string { return e.err.Error() }
func (e tooLargeError) Unwrap() error { return e.err }

// TooLarge marks err as a refusal of the request's size: the same spans sent in smaller
// requests may well be accepted, so the chain splits the write instead of retrying it.
func TooLarge(err error) error {
	if err == nil {
		return nil
	}
	return tooLargeError{err}
}

// IsTooLarge reports whether err was marked TooLarge.
func IsTooLarge(err error) bool {
	var t tooLargeError
	return errors.As(err, &t)
}

// Rejected is a partial success: the backend stored the request but for Spans spans it
// refused, saying why in Message. The request counts as written — sending it again would
// store the accepted spans twice, and the refused ones would be refused again.
type Rejected struct {
	Spans   int64
	Message string
}

func (r *Rejected) Error() string {
	return fmt.Sprintf("the backend rejected %d spans: %s", r.Spans, r.Message)
}

// AsRejected returns the partial success err holds, or nil.
func AsRejected(err error) *Rejected {
	var r *Rejected
	if errors.As(err, &r) {
		return r
	}
	return nil
}
