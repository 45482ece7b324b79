// Package etcd exists only so that this build-only module has a package; the
// binary comes from the tool line in go.mod.
package etcd
