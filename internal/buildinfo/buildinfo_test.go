package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestInfoFromBuildInfo(t *testing.T) {
	rev := "0123456789abcdef0123456789abcdef01234567"
	vcs := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: "2026-12-04T23:00:00Z"}, {Key: "vcs.modified", Value: "true"}}
	cases := []struct {
		name        string
		bi          debug.BuildInfo
		short, full string
	}{
		{"tagged", debug.BuildInfo{GoVersion: "go1.24.4", Main: debug.Module{Version: "v1.4.0"}, Settings: vcs},
			"v1.4.0", "v1.4.0 (revision " + rev + ", 2026-12-04T23:00:00Z, modified, go1.24.4)"},
		{"checkout", debug.BuildInfo{GoVersion: "go1.24.4", Main: debug.Module{Version: "(devel)"}, Settings: vcs},
			"devel+0123456789ab-dirty", "(devel) (revision " + rev + ", 2026-12-04T23:00:00Z, modified, go1.24.4)"},
		{"clean checkout", debug.BuildInfo{GoVersion: "go1.24.4", Main: debug.Module{Version: "(devel)"}, Settings: vcs[:3]},
			"devel+0123456789ab", "(devel) (revision " + rev + ", 2026-12-04T23:00:00Z, go1.24.4)"},
		{"no vcs", debug.BuildInfo{GoVersion: "go1.24.4", Main: debug.Module{Version: "(devel)"}},
			"(devel)", "(devel) (revision unknown, go1.24.4)"},
		{"no version", debug.BuildInfo{GoVersion: "go1.24.4"},
			"unknown", "unknown (revision unknown, go1.24.4)"},
	}
	for _, tc := range cases {
		in := FromBuildInfo(&tc.bi)
		if got := in.Short(); got != tc.short {
			t.Errorf("%s: Short %q, want %q", tc.name, got, tc.short)
		}
		if got := in.String(); got != tc.full {
			t.Errorf("%s: String %q, want %q", tc.name, got, tc.full)
		}
	}
}
