package v1alpha1

import (
	"encoding/json"
	"fmt"
	"time"
)

// DurationPattern is what the API server accepts as a Duration: a Go duration without a
// sign, such as "500ms", "30s" or "1m30s".
const DurationPattern = `^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`

// Duration is a length of time written as Go writes one: "500ms", "30s", "1m30s" (units
// ns, us, ms, s, m, h; no sign).
//
// Any JSON value decodes into it. The API server refuses malformed values, but an object
// stored before that validation existed (or under an older CRD) must not stop the operator
// from listing every other Ingester, as a strict decoder would: such a value decodes here,
// and the operator reports it on that one Ingester's status.
// +kubebuilder:validation:Type=string
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
type Duration string

// NewDuration returns d as a *Duration.
func NewDuration(d time.Duration) *Duration {
	s := Duration(d.String())
	return &s
}

// UnmarshalJSON takes a string as it is and keeps any other JSON value as its text, so
// that Parse can say what is wrong with it.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		s = string(b)
	}
	*d = Duration(s)
	return nil
}

// Parse returns the duration, or an error saying what a duration looks like.
func (d Duration) Parse() (time.Duration, error) {
	v, err := time.ParseDuration(string(d))
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a duration: write one as 500ms, 30s or 1m30s", string(d))
	}
	return v, nil
}

// Or is the duration, or def when it is unset or malformed (the operator reports a
// malformed one before using any value).
func (d *Duration) Or(def time.Duration) time.Duration { return parsedOr(d, def) }

// parsedOr is *d parsed, or def when d is nil or does not parse.
func parsedOr[T interface{ Parse() (time.Duration, error) }](d *T, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	v, err := (*d).Parse()
	if err != nil {
		return def
	}
	return v
}

// PositiveDuration is a Duration longer than zero.
// +kubebuilder:validation:Type=string
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
// +kubebuilder:validation:XValidation:rule="!self.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$') || duration(self) > duration('0s')",message="must be longer than 0, such as 500ms or 30s"
type PositiveDuration Duration

// NewPositiveDuration returns d as a *PositiveDuration.
func NewPositiveDuration(d time.Duration) *PositiveDuration {
	return (*PositiveDuration)(NewDuration(d))
}

// UnmarshalJSON decodes any JSON value, as Duration does.
func (d *PositiveDuration) UnmarshalJSON(b []byte) error { return (*Duration)(d).UnmarshalJSON(b) }

// Parse returns the duration, or an error saying what a positive duration looks like.
func (d PositiveDuration) Parse() (time.Duration, error) {
	v, err := Duration(d).Parse()
	if err == nil && v == 0 {
		err = fmt.Errorf("%q is not longer than 0: write a duration such as 500ms or 30s", string(d))
	}
	return v, err
}

// Or is the duration, or def when it is unset or invalid.
func (d *PositiveDuration) Or(def time.Duration) time.Duration { return parsedOr(d, def) }
