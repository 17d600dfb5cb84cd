package amqpconn

import (
	"errors"
	"strings"
)

// Redact returns url with its password replaced by "***", so that it can be
// shown: amqp://guest:guest@host/ becomes amqp://guest:***@host/. It works on
// strings that do not parse as URLs too, since those are the ones that end up
// in error messages.
func Redact(url string) string {
	start, end := passwordAt(url)
	if start == end {
		return url
	}
	return url[:start] + "***" + url[end:]
}

// password extracts the password from the userinfo of url without parsing
// it, or returns "" when there is none.
func password(url string) string {
	start, end := passwordAt(url)
	return url[start:end]
}

// passwordAt returns where the password of url starts and ends, equal
// when there is none.
func passwordAt(url string) (start, end int) {
	rest, off := url, 0
	if i := strings.Index(rest, "://"); i >= 0 {
		rest, off = rest[i+3:], i+3
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		// An unencoded "/" in a password is invalid but still a password:
		// only stop at it when no "@" follows.
		if j := strings.LastIndex(rest, "@"); j < i {
			rest = rest[:i]
		}
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return 0, 0
	}
	colon := strings.Index(rest[:at], ":")
	if colon < 0 {
		return 0, 0
	}
	return off + colon + 1, off + at
}

// redactedError hides a password that a wrapped error's text may contain,
// while keeping errors.Is and errors.As working on the cause.
type redactedError struct {
	err error
	pw  string
}

// Error hides the password wherever it appears, URL or not: showing too
// little beats showing it.
func (e *redactedError) Error() string {
	return strings.ReplaceAll(e.err.Error(), e.pw, "***")
}
func (e *redactedError) Unwrap() error { return e.err }

// RedactError returns err with every occurrence of url's password hidden.
func RedactError(err error, url string) error {
	pw := password(url)
	if err == nil || pw == "" {
		return err
	}
	var re *redactedError
	if errors.As(err, &re) && re.pw == pw {
		return err
	}
	return &redactedError{err: err, pw: pw}
}
