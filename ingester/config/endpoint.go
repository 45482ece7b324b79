package config

import (
	"fmt"
	"net/url"
	"strings"
)

// GRPCTarget is the gRPC endpoint as gRPC dials it: without the http:// or https:// the
// Collector's configuration allows in front of host:port.
func (o OTLPStorage) GRPCTarget() string {
	for _, scheme := range []string{"http://", "https://"} {
		if rest, ok := strings.CutPrefix(o.Endpoint, scheme); ok {
			return rest
		}
	}
	return o.Endpoint
}

// endpointProblem says what is wrong with the endpoint for its protocol ("" when nothing
// is). A gRPC endpoint written as a URL would otherwise be dialled as a host name and
// fail at every write, as if the backend were down. Messages never show a password the
// endpoint carries.
func (o OTLPStorage) endpointProblem() string {
	shown := RedactEndpoint(o.Endpoint)
	if o.Protocol == OTLPProtocolHTTP {
		u, err := url.Parse(o.Endpoint)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return fmt.Sprintf("%q is not an http:// or https:// URL", shown)
		}
		return ""
	}
	// A scheme says whether the connection is plaintext: it must not contradict insecure
	// (plaintext against a TLS port, or the reverse, fails every write).
	target := o.GRPCTarget()
	if target != o.Endpoint {
		if strings.HasPrefix(o.Endpoint, "http://") != o.Insecure {
			return fmt.Sprintf("%q: for gRPC, http:// goes with insecure: true, https:// without it", shown)
		}
		if strings.ContainsAny(target, "/@?#") {
			return fmt.Sprintf("%q: a gRPC endpoint is host:port, without a path or credentials", shown)
		}
		return ""
	}
	// Anything else gRPC resolves as it is: host:port, a host (port 443), or a target with
	// a resolver scheme (dns:///host:port, unix:///path). Only credentials have no place.
	if strings.Contains(target, "@") && !strings.HasPrefix(target, "unix") {
		return fmt.Sprintf("%q: a gRPC endpoint carries no credentials (headers do)", shown)
	}
	return ""
}

// RedactEndpoint is the endpoint with whatever stands before an @ in it (a user and
// password) replaced, for messages and logs.
func RedactEndpoint(endpoint string) string {
	at := strings.LastIndex(endpoint, "@")
	if at < 0 {
		return endpoint
	}
	start := strings.Index(endpoint, "://")
	if start < 0 || start > at {
		start = 0
	} else {
		start += len("://")
	}
	return endpoint[:start] + "***" + endpoint[at:]
}

// validHeaderName is true for an HTTP token (RFC 9110), which gRPC metadata keys are too.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// ValidHeaderValue is true for a value the protocol carries as text: no control
// characters, and for gRPC's metadata printable ASCII only (HTTP takes other bytes too).
// Checked on the value read from the environment too, so that a stray control character
// is a refusal at start-up, not a write that fails for good.
func ValidHeaderValue(value, protocol string) bool {
	for _, c := range []byte(value) {
		if (c < 0x20 && c != '\t') || c == 0x7f || (c > 0x7f && protocol == OTLPProtocolGRPC) {
			return false
		}
	}
	return true
}
