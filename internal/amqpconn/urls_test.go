package amqpconn

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSplitURLs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"amqp://a/", []string{"amqp://a/"}},
		{"amqp://g:p@a:5681/,amqp://g:p@b:5682/", []string{"amqp://g:p@a:5681/", "amqp://g:p@b:5682/"}},
		{"amqp://a/, AMQPS://b/ ,amqp://c/", []string{"amqp://a/", "AMQPS://b/", "amqp://c/"}},
		// A comma in a password is not a separator.
		{"amqp://g:p,q@a/", []string{"amqp://g:p,q@a/"}},
		// A doubled or trailing comma is an empty element.
		{"amqps://a/,,amqp://b/", []string{"amqps://a/", "", "amqp://b/"}},
		{"amqp://a/, ", []string{"amqp://a/", ""}},
	} {
		if got := SplitURLs(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("SplitURLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactList(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"amqp://guest:guest@a:5672/,amqp://guest:guest@b:5672/", "amqp://guest:***@a:5672/,amqp://guest:***@b:5672/"},
		{"amqp://a:1/,amqps://b/", "amqp://a:1/,amqps://b/"},
		// A password holding ",amqp://" would be cut in two by the split:
		// the whole is hidden as one URL's password. So is a list with
		// credentials after a URL without: too much, never too little.
		{"amqp://u:x,amqp://y@h/", "amqp://u:***@h/"},
		{"amqp://a/,amqp://u:p@b/", "amqp://a/,amqp:***@b/"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestValidateURLsNamesTheBadOne(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"amqp://g:s3cret@a/,amqp://g:s3cret@b:nope/", `broker 2 of 2: invalid AMQP URL "amqp://g:***@b:nope/"`},
		{"amqp://g:s3cret@a/,http://b/", `broker 2 of 2: invalid AMQP URL "http://b/"`},
		{"amqp://u:s3cret,amqp://x@h:bad/", `invalid AMQP URL list "amqp://u:***@h:bad/": broker 1 of 2 is not a valid URL`},
	} {
		err := ValidateURLs(SplitURLs(tc.in))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ValidateURLs(%q) = %v, want it to start %q", tc.in, err, tc.want)
		}
	}
	if err := ValidateURLs(SplitURLs("amqp://a/,amqps://b:5671/")); err != nil {
		t.Errorf("a good list: %v", err)
	}
}

func TestEndpointTakesAList(t *testing.T) {
	t.Setenv("AMQP_URL", "amqp://g:p@a:5681/,amqp://g:p@b:5682/")
	ep, err := Endpoint{}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"amqp://g:p@a:5681/", "amqp://g:p@b:5682/"}; !slices.Equal(ep.URLs, want) {
		t.Errorf("URLs = %q, want %q", ep.URLs, want)
	}
	ep, err = Endpoint{URL: "ignored", URLs: []string{"amqp://c/"}}.WithDefaults()
	if err != nil || ep.URL != "amqp://c/" {
		t.Errorf("URLs over URL: %+v, %v", ep, err)
	}
}

func TestURLFromEnvAndFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "amqp-url")
	if err := os.WriteFile(path, []byte("  amqp://u:p@a/\n\namqps://u:p@b/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AMQP_URL", "")
	t.Setenv("AMQP_URL_FILE", path)
	if got, err := URLFromEnv(""); err != nil || got != "amqp://u:p@a/,amqps://u:p@b/" {
		t.Errorf("from AMQP_URL_FILE: %q, %v", got, err)
	}
	if got, _ := URLFromEnv("amqp://given/"); got != "amqp://given/" {
		t.Errorf("a URL given wins: got %q", got)
	}
	t.Setenv("AMQP_URL", "amqp://env/")
	if _, err := URLFromEnv(""); err == nil {
		t.Error("AMQP_URL and AMQP_URL_FILE both set: no error")
	}
	// systemd's LoadCredential= puts the file in $CREDENTIALS_DIRECTORY.
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	if got, err := ReadURLFile("amqp-url"); err != nil || !strings.HasPrefix(got, "amqp://u:p@a/") {
		t.Errorf("from the credentials directory: %q, %v", got, err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n \n"), 0o600)
	for _, bad := range []string{empty, filepath.Join(dir, "missing")} {
		if _, err := ReadURLFile(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ReadURLFile(%q): %v, want an error naming it", bad, err)
		}
	}
}
