// Package failure names the kinds of error the ingester's parts tell each other apart by:
// what retrying cannot fix, what is a message's own fault, what is too large to send at
// once, and what a backend accepted only in part. Decoders, writers and the processor
// chain all import it; none of them imports another for it.
package failure

import (
	"errors"
	"fmt"
	"slices"
)

// kind is one kind of failure; an error is of a kind when errors.Is finds the kind in it.
type kind string

func (k kind) Error() string { return string(k) }

const (
	permanent   kind = "permanent"
	undecodable kind = "undecodable"
	tooLarge    kind = "too large"
)

// marked is an error with the kinds it was marked with.
type marked struct {
	err   error
	kinds []kind
}

func (m marked) Error() string { return m.err.Error() }
func (m marked) Unwrap() error { return m.err }

// Is makes errors.Is(err, kind) find the kinds of a marked error anywhere in err's tree.
func (m marked) Is(target error) bool {
	k, ok := target.(kind)
	return ok && slices.Contains(m.kinds, k)
}

func mark(err error, kinds ...kind) error {
	if err == nil {
		return nil
	}
	return marked{err: err, kinds: kinds}
}

// Permanent marks err as not worth retrying: the backend refused this data for good
// (a bad request), as opposed to being down, throttling or refusing credentials.
func Permanent(err error) error { return mark(err, permanent) }

// IsPermanent reports whether err, or an error it wraps, was marked Permanent (or Decode).
func IsPermanent(err error) bool { return errors.Is(err, permanent) }

// Decode marks err as an undecodable message: permanent, and subject to onDecodeError.
func Decode(err error) error { return mark(err, undecodable, permanent) }

// IsDecode reports whether err marks an undecodable message.
func IsDecode(err error) bool { return errors.Is(err, undecodable) }

// TooLarge marks err as a refusal of the request's size: the same spans sent in smaller
// requests may well be accepted, so the chain splits the write instead of retrying it.
func TooLarge(err error) error { return mark(err, tooLarge) }

// IsTooLarge reports whether err was marked TooLarge.
func IsTooLarge(err error) bool { return errors.Is(err, tooLarge) }

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
