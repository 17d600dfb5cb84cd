package amqpconn

import (
	"errors"
	"fmt"
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
		got := Redact(url)
		if pw != "" && strings.Count(got, pw) >= strings.Count(url, pw) {
			t.Errorf("Redact(%q) = %q still shows %q", url, got, pw)
		}
	})
}
