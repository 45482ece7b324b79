package config

import (
	"os"
	"strings"
	"testing"
)

// TestHeaderValuesReadTheEnvironment: ${env:NAME} is replaced wherever it stands in a
// header's value, as the Collector's configuration does ("Bearer ${env:TOKEN}" was sent as
// that text), and $$ stands for $; an unset variable or an unclosed reference is refused,
// naming the variable and never the value.
func TestHeaderValuesReadTheEnvironment(t *testing.T) {
	t.Setenv("SPANFLOW_TEST_A", "alpha")
	t.Setenv("SPANFLOW_TEST_B", "")
	for _, tc := range []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"${env:SPANFLOW_TEST_A}", "alpha", ""},
		{"Bearer ${env:SPANFLOW_TEST_A}", "Bearer alpha", ""},
		{"${env:SPANFLOW_TEST_A}:${env:SPANFLOW_TEST_A}!", "alpha:alpha!", ""},
		{"[${env:SPANFLOW_TEST_B}]", "[]", ""},
		{"$${env:SPANFLOW_TEST_A} costs $5", "${env:SPANFLOW_TEST_A} costs $5", ""},
		{"Bearer ${env:SPANFLOW_TEST_UNSET}", "", "environment variable SPANFLOW_TEST_UNSET is not set"},
		{"Bearer ${env:SPANFLOW_TEST_A", "", "without its closing }"},
	} {
		got, err := ExpandEnv(tc.in, os.LookupEnv)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: %q, %v; want %q, error %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}
