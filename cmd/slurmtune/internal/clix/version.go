package clix

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// VersionLine is what --version prints after "slurmtune version ". A
// binary built without the ldflags (`go install ...@v1.2.3`) reports what
// Go recorded in it: the module version, and the VCS revision and time.
func VersionLine(version, commit, date string) string {
	v, c, d := version, commit, date
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && c == "unknown":
				c = s.Value
			case s.Key == "vcs.time" && d == "unknown":
				d = s.Value
			}
		}
	}
	return fmt.Sprintf("%s (commit %s, built %s, %s/%s, %s)", v, c, d, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
