package amqpconn

import (
	"fmt"
	"regexp"
	"strings"
)

// listSep is where a broker list splits: a comma followed by the next
// URL's scheme (any scheme, so that a wrong one is reported, not taken
// for a vhost). A comma in a password therefore needs no escaping unless
// a scheme and "://" follow it.
var listSep = regexp.MustCompile(`,\s*[A-Za-z][A-Za-z0-9+.-]*://`)

// SplitURLs splits a list of brokers, "amqp://a/,amqp://b/", into its URLs.
// A string without a list separator is one URL.
func SplitURLs(s string) []string {
	var urls []string
	start := 0
	for _, loc := range listSep.FindAllStringIndex(s, -1) {
		urls = appendURL(urls, s[start:loc[0]])
		start = loc[0] + 1
	}
	return appendURL(urls, s[start:])
}

// appendURL appends u, and an empty URL for each comma it ends with: a
// doubled or trailing comma is an empty element, reported as such, not
// taken for the end of a vhost.
func appendURL(urls []string, u string) []string {
	u = strings.TrimSpace(u)
	trimmed := strings.TrimRight(u, ", \t")
	urls = append(urls, trimmed)
	for range strings.Count(u[len(trimmed):], ",") {
		urls = append(urls, "")
	}
	return urls
}

// JoinURLs is the inverse of SplitURLs.
func JoinURLs(urls []string) string { return strings.Join(urls, ",") }

// ValidateURLs checks every URL of a list. Its error names the bad one by
// its place in the list, and shows it only when the split can be trusted
// (see trustedSplit): never a fragment of a password.
func ValidateURLs(urls []string) error {
	if len(urls) == 0 {
		return fmt.Errorf("no broker URL")
	}
	if len(urls) == 1 {
		return Config{URL: urls[0]}.Validate()
	}
	for i, u := range urls {
		if u == "" {
			return fmt.Errorf("broker %d of %d in %q: empty URL", i+1, len(urls), redactList(urls))
		}
		err := Config{URL: u}.Validate()
		if err == nil {
			continue
		}
		if trustedSplit(urls) {
			return fmt.Errorf("broker %d of %d: %w", i+1, len(urls), err)
		}
		return fmt.Errorf("invalid AMQP URL list %q: broker %d of %d is not a valid URL (percent-encode a comma in a password)", redactList(urls), i+1, len(urls))
	}
	return nil
}

// trustedSplit reports whether a split into urls cannot have cut a
// password in two. A password holding ",amqp://" is cut into an element
// without the "@" that ends its userinfo, followed by one with an "@":
// when that pattern appears, the whole string is redacted as one URL.
func trustedSplit(urls []string) bool {
	sawBare := false
	for _, u := range urls {
		hasAt := strings.Contains(u, "@")
		if hasAt && sawBare {
			return false
		}
		sawBare = sawBare || !hasAt
	}
	return true
}

// redactList shows a list with every password hidden: each URL's own,
// or, when the split cannot be trusted, everything from the first
// password to the last "@", as if the list were one URL.
func redactList(urls []string) string {
	if !trustedSplit(urls) {
		return redactOne(JoinURLs(urls))
	}
	shown := make([]string, len(urls))
	for i, u := range urls {
		shown[i] = redactOne(u)
	}
	return JoinURLs(shown)
}
