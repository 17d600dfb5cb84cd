// Package cli holds what the commands share: how an error maps to an exit
// status and a one-line message.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// UsageError is a bad flag, argument or configuration: exit status 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usage wraps err as a UsageError.
func Usage(err error) error { return UsageError{err} }

// ExitCode prints err as one line prefixed with the command's name and
// returns the exit status: 0 for nil and -h, 2 for a UsageError, 1 else.
func ExitCode(name string, err error, stderr io.Writer) int {
	var ue UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s: %v (see %s -h)\n", name, err, name)
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
}
