// Package version holds the build's version, stamped by the Makefile with -ldflags.
package version

// Version is the release of this build ("dev" when built without the Makefile).
var Version = "dev"

// DefaultImage is the container image of this build; the operator runs ingester pods
// from it unless an Ingester names another.
var DefaultImage = "ghcr.io/spanflow/spanflow:" + Version
