// Package version reports what build of tern is running.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set at build time with -ldflags "-X github.com/tern-iot/tern/internal/version.Version=v1.2.3".
var Version = "dev"

// String is a one-line description: version, VCS revision, Go, OS/arch.
func String(program string) string {
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = " " + s.Value[:12]
			}
		}
	}
	return fmt.Sprintf("%s %s%s %s %s/%s", program, Version, rev, runtime.Version(), runtime.GOOS, Arch())
}

// Arch is the architecture this binary was built for, as releases name
// it: amd64, arm64, or arm with its GOARM level (armv6, armv7).
func Arch() string {
	arch := runtime.GOARCH
	if arch == "arm" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "GOARM" {
					arch += "v" + s.Value
				}
			}
		}
	}
	return arch
}
