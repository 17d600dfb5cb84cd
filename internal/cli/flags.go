package cli

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/logfan/logfan/internal/amqpconn"
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

// URLFlags registers -url and -url-file on fs. The function it returns
// gives the URL they name after parsing, "" leaving the default to the
// library ($AMQP_URL, $AMQP_URL_FILE, then localhost), or a usage error.
func URLFlags(fs *flag.FlagSet) func() (string, error) {
	url := fs.String("url", "", "broker `URL`, or a comma-separated list to fail over between (default $AMQP_URL, else the file $AMQP_URL_FILE names, else "+amqpconn.Redact(amqpconn.DefaultURL)+")")
	file := fs.String("url-file", "", "read the broker URL, or one per line, from this `file`: the password stays out of ps and shell history (a bare name is looked up in $CREDENTIALS_DIRECTORY)")
	return func() (string, error) {
		switch {
		case *url != "" && *file != "":
			return "", Usage(errors.New("-url and -url-file exclude each other"))
		case *file != "":
			u, err := amqpconn.ReadURLFile(*file)
			if err != nil {
				return "", Usage(err)
			}
			return u, nil
		}
		return *url, nil
	}
}
