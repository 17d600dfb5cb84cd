package amqpconn

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"amqp://guest:guest@localhost:5672/", "amqp://guest:***@localhost:5672/"},
		{"amqps://u:p%40ss@host/vhost?heartbeat=5", "amqps://u:***@host/vhost?heartbeat=5"},
		{"amqp://u:pa/ss@host/", "amqp://u:***@host/"},
		{"amqp://u:p@ss@host/", "amqp://u:***@host/"},
		{"amqp://user@host/", "amqp://user@host/"},
		{"amqp://host:5672/", "amqp://host:5672/"},
		{"amqp://host/path@x", "amqp://host/path@x"},
		{"not a url", "not a url"},
		{"", ""},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactError(t *testing.T) {
	url := "amqp://guest:s3cret@host/"
	cause := errors.New("boom")
	err := RedactError(fmt.Errorf("dial %s: %w", url, cause), url)
	if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "guest:***@host") {
		t.Errorf("error %q", err)
	}
	if !errors.Is(err, cause) {
		t.Error("errors.Is lost the cause")
	}
	if RedactError(nil, url) != nil {
		t.Error("nil error became non-nil")
	}
}

func FuzzRedact(f *testing.F) {
	for _, s := range []string{"amqp://guest:guest@localhost:5672/", "amqps://a:b@c/d?e=f", "amqp://@:", ":@", "amqp://x:y@"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, url string) {
		pw := password(url)
		if strings.Contains(pw, "*") {
			t.Skip("cannot be told from the *** that hides it")
		}
		got := Redact(url)
		if pw != "" && strings.Count(got, pw) >= strings.Count(url, pw) {
			t.Errorf("Redact(%q) = %q still shows %q", url, got, pw)
		}
	})
}

// FuzzPasswordNeverShown builds URLs around a password of arbitrary bytes
// and checks every way an error can show a URL: Validate (which parsers
// fail on in many ways), RedactError over messages that quote the URL,
// and Redact itself. None may show the password, as written or quoted.
func FuzzPasswordNeverShown(f *testing.F) {
	for _, pw := range []string{"s3cret", `pa"ss`, "pässwörd", "tab\there", "new\nline", "p%zzss", "p%40ss", "a@b/c", "x?y#z", "\x00\x01\xff"} {
		f.Add(pw)
	}
	f.Fuzz(func(t *testing.T, pw string) {
		if strings.Contains(pw, "*") {
			t.Skip("cannot be told from the *** that hides it")
		}
		for _, url := range []string{
			"amqp://guest:" + pw + "@host:5672/vhost",
			"amqp://guest:" + pw + "@host:notaport/",
			"amqps://guest:" + pw + "@",
			"http://guest:" + pw + "@host/",
			"amqp://guest:" + pw + "@a:5681/,amqp://guest:" + pw + "@b:5682/",
			"amqp://a:5681/,amqps://guest:" + pw + "@b:notaport/",
		} {
			shown := []string{Redact(url)}
			if err := (Config{URL: url}).Validate(); err != nil {
				shown = append(shown, err.Error())
			}
			if _, err := (Endpoint{URL: url}).WithDefaults(); err != nil {
				shown = append(shown, err.Error())
			}
			shown = append(shown, RedactError(fmt.Errorf("dial %q: %s", url, url), url).Error())
			for _, form := range leakForms(url, pw) {
				for _, s := range shown {
					if strings.Contains(s, form) {
						t.Fatalf("URL %q: %q shows the password as %q", url, s, form)
					}
				}
			}
		}
	})
}

// leakForms returns the forms of pw that would show it: as written, and
// quoted, skipping forms too short to mean anything or that the rest of
// the URL contains anyway.
func leakForms(url, pw string) []string {
	var forms []string
	quoted := strconv.Quote(pw)
	for _, form := range []string{pw, quoted[1 : len(quoted)-1]} {
		rest := strings.Replace(url, pw, "***", 1)
		if len(form) >= 4 && !strings.Contains(rest, form) && !strings.Contains("invalid AMQP URL ***: the password is not valid in a URL (percent-encode it) parse first path segment in URL cannot contain colon", form) {
			forms = append(forms, form)
		}
	}
	return forms
}
