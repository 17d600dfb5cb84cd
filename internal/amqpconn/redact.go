package amqpconn

import (
	"errors"
	neturl "net/url"
	"sort"
	"strconv"
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

// Error hides the password wherever it appears, URL or not, and in the
// forms a message may carry it: as written, percent-decoded, quoted as %q
// quotes it, or percent-encoded. Showing too little beats showing it.
func (e *redactedError) Error() string {
	msg := e.err.Error()
	for _, form := range passwordForms(e.pw) {
		msg = strings.ReplaceAll(msg, form, "***")
	}
	return msg
}

func passwordForms(pw string) []string {
	forms := []string{pw}
	if dec, err := neturl.PathUnescape(pw); err == nil {
		forms = append(forms, dec)
	}
	for _, f := range append([]string(nil), forms...) {
		quoted := strconv.Quote(f)
		forms = append(forms, quoted[1:len(quoted)-1], neturl.QueryEscape(f), neturl.PathEscape(f))
	}
	// Longest first, so that a form is never half-replaced by a shorter one.
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	return forms
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
