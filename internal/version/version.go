// Package version holds the build's version, stamped by the Makefile with -ldflags.
package version

import "runtime/debug"

// Version is the release of this build ("dev" when built without the Makefile).
var Version = "dev"

// DefaultImage is the container image of this build; the operator runs ingester pods
// from it unless an Ingester names another.
var DefaultImage = "ghcr.io/spanflow/spanflow:" + Version

// Describe is the version to show: the stamped one, or for a build without the Makefile
// what Go recorded of it (the module version of go install, or the commit).
func Describe() string {
	if Version != "dev" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var revision, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "-dirty"
			}
		}
	}
	if len(revision) > 12 {
		revision = revision[:12]
	}
	if revision == "" {
		return Version
	}
	return Version + "-" + revision + modified
}
