package cli

import (
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
)

// ParseLevel parses a -level flag: slog's names, with an optional offset.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, Usage(fmt.Errorf("invalid -level %q: want debug, info, warn or error, optionally with an offset such as warn+2 or info-4", s))
	}
	return l, nil
}

// Strings is a flag that may be given several times, collecting each.
type Strings []string

func (s *Strings) String() string { return strings.Join(*s, ",") }

// Set appends one value.
func (s *Strings) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// Version is what -version prints: the command, its module version, and
// the VCS revision and time when the binary was built from a checkout.
func Version(name string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Sprintf("%s (no build information) %s", name, runtime.Version())
	}
	v := fmt.Sprintf("%s %s", name, info.Main.Version)
	var rev, at, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+modified"
			}
		}
	}
	if rev != "" {
		v += fmt.Sprintf(" (revision %.12s%s, %s)", rev, dirty, at)
	}
	return v + " " + info.GoVersion
}
