// Package k8s exists only so that this build-only module has a package; the
// binaries come from the tool lines in go.mod.
package k8s
