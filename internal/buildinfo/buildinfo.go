// Package buildinfo reports which build of outbox-relay is running, from the
// information the Go toolchain embeds (runtime/debug.ReadBuildInfo): the
// main module's version and, for builds from a git checkout, the VCS
// revision.
package buildinfo

import (
	"fmt"
	"runtime/debug"
)

// Info describes one build.
type Info struct {
	// Version is the main module's version: a tag such as "v1.4.0" for
	// `go install …@v1.4.0`, "(devel)" for a build of a checkout, or
	// "unknown" when the binary carries no build information.
	Version string `json:"version"`
	// Revision is the VCS commit (vcs.revision, full hash); "" when unknown
	// (e.g. built with -buildvcs=false, or not from a checkout).
	Revision string `json:"revision"`
	// Time is the commit time (vcs.time, RFC3339); "" when unknown.
	Time string `json:"time"`
	// Modified: the working tree had uncommitted changes (vcs.modified).
	Modified bool `json:"modified"`
	// GoVersion is the toolchain that built the binary, e.g. "go1.24.4".
	GoVersion string `json:"go_version"`
}

// Read returns the running binary's Info.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "unknown"}
	}
	return FromBuildInfo(bi)
}

// FromBuildInfo extracts Info from bi (non-nil).
func FromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if in.Version == "" {
		in.Version = "unknown"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// Short is the version to show where there is room for one word (the
// console's relay list, heartbeats): Version, except that a "(devel)" or
// unknown version with a known revision becomes "devel+<12-char revision>"
// (with "-dirty" when Modified).
func (in Info) Short() string {
	if (in.Version != "(devel)" && in.Version != "unknown") || in.Revision == "" {
		return in.Version
	}
	rev := in.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	s := "devel+" + rev
	if in.Modified {
		s += "-dirty"
	}
	return s
}

// String is the full line `outbox-relay version` prints, e.g.
// "v1.4.0 (revision 0123abcd…, 2026-12-04T23:00:00Z, go1.24.4)" or
// "(devel) (revision 0123abcd…, modified, go1.24.4)".
func (in Info) String() string {
	s := in.Version + " ("
	if in.Revision != "" {
		s += "revision " + in.Revision
		if in.Time != "" {
			s += ", " + in.Time
		}
		if in.Modified {
			s += ", modified"
		}
	} else {
		s += "revision unknown"
	}
	return s + fmt.Sprintf(", %s)", in.GoVersion)
}
