package config

import (
	"errors"
	"fmt"
	"strings"
)

// ExpandEnv replaces each ${env:NAME} in a header's value with the variable's value, as
// lookup (os.LookupEnv) finds it, as the OpenTelemetry Collector's configuration does
// ("Bearer ${env:TOKEN}"), and $$ with $ (so "$${env:X}" is the text itself). A variable
// that is not set is an error: a header sent without its credential would only show as
// the backend's refusals.
func ExpandEnv(v string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(v, "$") {
		return v, nil
	}
	var out strings.Builder
	for rest := v; rest != ""; {
		i := strings.IndexByte(rest, '$')
		if i < 0 {
			out.WriteString(rest)
			break
		}
		out.WriteString(rest[:i])
		rest = rest[i:]
		switch {
		case strings.HasPrefix(rest, "$$"):
			out.WriteByte('$')
			rest = rest[2:]
		case strings.HasPrefix(rest, "${env:"):
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return "", errors.New("${env: without its closing }")
			}
			name := rest[len("${env:"):end]
			value, set := lookup(name)
			if !set {
				return "", fmt.Errorf("environment variable %s is not set", name)
			}
			out.WriteString(value)
			rest = rest[end+1:]
		default:
			out.WriteByte('$')
			rest = rest[1:]
		}
	}
	return out.String(), nil
}
