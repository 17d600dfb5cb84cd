package amqpconn

import (
	"errors"
	neturl "net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Redact returns url with its password replaced by "***", so that it can be
// shown: amqp://guest:guest@host/ becomes amqp://guest:***@host/, and a list
// of brokers has each password hidden. It works on strings that do not
// parse as URLs too, since those are the ones that end up in error messages.
func Redact(url string) string {
	if urls := SplitURLs(url); len(urls) > 1 {
		// What would be the password if url were one URL stays hidden too.
		if shown, pw := redactList(urls), password(url); pw == "" || !strings.Contains(shown, pw) {
			return shown
		}
	}
	return redactOne(url)
}

func redactOne(url string) string {
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

// redactedError hides the passwords that a wrapped error's text may
// contain, while keeping errors.Is and errors.As working on the cause.
type redactedError struct {
	err error
	pws []string
}

// Error hides each password wherever it appears, URL or not, and in the
// forms a message may carry it: as written, percent-decoded, quoted as %q
// quotes it, or percent-encoded. Showing too little beats showing it.
func (e *redactedError) Error() string {
	msg := e.err.Error()
	for _, form := range passwordForms(e.pws) {
		msg = strings.ReplaceAll(msg, form, "***")
	}
	return msg
}

// passwords returns the passwords in url, a URL or a list of them: each
// URL's own, and the one that url holds if read as a single URL.
func passwords(url string) []string {
	var pws []string
	for _, u := range append(SplitURLs(url), url) {
		if pw := password(u); pw != "" && !slices.Contains(pws, pw) {
			pws = append(pws, pw)
		}
	}
	return pws
}

func passwordForms(pws []string) []string {
	forms := slices.Clone(pws)
	for _, pw := range pws {
		if dec, err := neturl.PathUnescape(pw); err == nil {
			forms = append(forms, dec)
		}
	}
	for _, f := range slices.Clone(forms) {
		quoted := strconv.Quote(f)
		forms = append(forms, quoted[1:len(quoted)-1], neturl.QueryEscape(f), neturl.PathEscape(f))
	}
	// Longest first, so that a form is never half-replaced by a shorter one.
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	return forms
}
func (e *redactedError) Unwrap() error { return e.err }

// RedactError returns err with every occurrence of url's password hidden;
// url may be a list of brokers.
func RedactError(err error, url string) error {
	pws := passwords(url)
	if err == nil || len(pws) == 0 {
		return err
	}
	var re *redactedError
	if errors.As(err, &re) && slices.Equal(re.pws, pws) {
		return err
	}
	return &redactedError{err: err, pws: pws}
}
