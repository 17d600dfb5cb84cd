package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logfan/logfan/internal/brokertest"
)

func TestMain(m *testing.M) {
	brokertest.Main(m, nil)
}

func TestSplitArgs(t *testing.T) {
	for _, tc := range []struct {
		words []string
		msg   string
		attrs []slog.Attr
	}{
		{[]string{"Info:", "Hello", "World"}, "Info: Hello World", nil},
		{[]string{"disk", "full", "dev=sda1", "pct=99"}, "disk full", []slog.Attr{slog.String("dev", "sda1"), slog.Int64("pct", 99)}},
		{[]string{"typed", "n=-3", "f=1.5", "e=2e3", "ok=true", "no=false", "zip=007", "id=123456789012345678901", "s=\"1\"", "t=\"true\"", "q=\"open"},
			"typed", []slog.Attr{slog.Int64("n", -3), slog.Float64("f", 1.5), slog.Float64("e", 2000), slog.Bool("ok", true), slog.Bool("no", false),
				slog.String("zip", "007"), slog.String("id", "123456789012345678901"), slog.String("s", "1"), slog.String("t", "true"), slog.String("q", "\"open")}},
		{[]string{"1+1=2", "is", "maths"}, "1+1=2 is maths", nil},
		{[]string{"a=b", "then", "c=d"}, "a=b then", []slog.Attr{slog.String("c", "d")}},
		{[]string{"k=v=w"}, "", []slog.Attr{slog.String("k", "v=w")}},
		{[]string{"=x"}, "=x", nil},
	} {
		msg, attrs := SplitArgs(tc.words)
		if msg != tc.msg || !reflect.DeepEqual(attrs, tc.attrs) {
			t.Errorf("SplitArgs(%q) = %q, %v; want %q, %v", tc.words, msg, attrs, tc.msg, tc.attrs)
		}
	}
}

// sameValue reports whether v is what raw, typed, should give.
func sameValue(v slog.Value, raw string) bool {
	switch v.Kind() {
	case slog.KindBool:
		return strconv.FormatBool(v.Bool()) == raw
	case slog.KindInt64:
		return strconv.FormatInt(v.Int64(), 10) == raw
	case slog.KindFloat64:
		f, err := strconv.ParseFloat(raw, 64)
		return err == nil && f == v.Float64()
	case slog.KindString:
		var s string
		return v.String() == raw || (json.Unmarshal([]byte(raw), &s) == nil && s == v.String())
	}
	return false
}

func FuzzSplitArgs(f *testing.F) {
	f.Add(`n=1 f=-0.5e3 ok=true s="1" zip=007 big=99999999999999999999`)
	f.Add("Info: Hello World user=ada")
	f.Add("a=b c =d e=")
	f.Fuzz(func(t *testing.T, line string) {
		words := strings.Fields(line)
		msg, attrs := SplitArgs(words)
		// Nothing is lost: the message and the attributes give the words back.
		var back []string
		if msg != "" {
			back = strings.Fields(msg)
		}
		for i, a := range attrs {
			_, raw, _ := strings.Cut(words[len(words)-len(attrs)+i], "=")
			if !sameValue(a.Value, raw) {
				t.Errorf("%s=%s became %v (%v)", a.Key, raw, a.Value, a.Value.Kind())
			}
			back = append(back, a.Key+"="+raw)
		}
		if strings.Join(back, " ") != strings.Join(words, " ") {
			t.Errorf("SplitArgs(%q) = %q, %v", words, msg, attrs)
		}
	})
}

func TestBadUsageExitsTwoWithOneLine(t *testing.T) {
	for _, args := range [][]string{{"-bogus"}, {"-level", "loud", "x"}, {"-timeout", "-1s", "x"}, {"-url", "http://u:s3cret@h/", "x"},
		{"-url", "amqp://u:s3cret@a/,amqp://u:s3cret@b:bad/", "x"}, {"-url-file", "/nonexistent/amqp-url", "x"},
		{"-url", "amqp://u:s3cret@a/", "-url-file", "/etc/hostname", "x"}, {"-url", "amqp://u:s3cret@a/, http://u:s3cret@b/", "x"}} {
		var stderr bytes.Buffer
		err := Run(context.Background(), args, strings.NewReader(""), io.Discard, &stderr)
		var out bytes.Buffer
		if code := exitCode(err, &out); code != 2 {
			t.Errorf("%q: exit %d (%v), want 2", args, code, err)
		}
		if stderr.Len() != 0 || strings.Count(out.String(), "\n") != 1 || strings.Contains(out.String(), "s3cret") {
			t.Errorf("%q: printed %q then %q, want one line without the password", args, stderr.String(), out.String())
		}
	}
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	err := Run(context.Background(), []string{"-h"}, strings.NewReader(""), io.Discard, &stderr)
	if !errors.Is(err, flag.ErrHelp) || exitCode(err, &stderr) != 0 {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"Usage: emitlog", "-url", "-level", "-timeout", "guest:***@"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("-h output lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestEmitsConfirmedRecords(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-emitlog")
	q := brokertest.Bind(t, ex, "fanout", "", true)

	var stderr bytes.Buffer
	if err := Run(context.Background(), []string{"-url", url, "-exchange", ex, "-level", "warn", "disk", "full", "dev=sda1"}, nil, io.Discard, &stderr); err != nil {
		t.Fatalf("Run: %v (%s)", err, stderr.String())
	}
	stdin := strings.NewReader("line one\r\n\nline two\n")
	if err := Run(context.Background(), []string{"-url", url, "-exchange", ex}, stdin, io.Discard, &stderr); err != nil {
		t.Fatalf("Run from stdin: %v (%s)", err, stderr.String())
	}
	want := []map[string]any{
		{"level": "WARN", "msg": "disk full", "dev": "sda1"},
		{"level": "INFO", "msg": "line one"},
		{"level": "INFO", "msg": "line two"},
	}
	for _, w := range want {
		var m map[string]any
		d := q.Next(t, 10*time.Second)
		if err := json.Unmarshal(d.Body, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "time")
		if !reflect.DeepEqual(m, w) || d.AppId != "emitlog" {
			t.Errorf("got %v from %q, want %v", m, d.AppId, w)
		}
	}
	q.Quiet(t, 200*time.Millisecond)
}

// TestEmitsThroughAList: with one broker of the list down, emitlog fails
// over to the other, whichever it tries first.
func TestEmitsThroughAList(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-emitlog")
	q := brokertest.Bind(t, ex, "fanout", "", true)
	list := "amqp://guest:guest@" + brokertest.FreeAddr(t) + "/," + url
	for range 3 {
		emitOne(t, q, "failed over", "-url", list, "-exchange", ex)
	}
}

// TestLevelsBelowDebug: a record at a level below DEBUG is sent, not
// filtered away in silence.
func TestLevelsBelowDebug(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-emitlog")
	q := brokertest.Bind(t, ex, "fanout", "", true)
	emitOne(t, q, "DEBUG-4 trace here", "-url", url, "-exchange", ex, "-level", "debug-4")
}

// emitOne runs emitlog with args and message words msg, and checks that q
// receives the record.
func emitOne(t *testing.T, q *brokertest.Queue, msg string, args ...string) {
	t.Helper()
	var stderr bytes.Buffer
	if err := Run(context.Background(), append(args, strings.Fields(msg)...), nil, io.Discard, &stderr); err != nil {
		t.Fatalf("Run: %v (%s)", err, stderr.String())
	}
	if d := q.Next(t, 10*time.Second); !strings.Contains(string(d.Body), msg) {
		t.Fatalf("got %s, want %q", d.Body, msg)
	}
}

// TestURLFile: the broker URL read from a file, as systemd's
// LoadCredential= gives it, by a bare name in $CREDENTIALS_DIRECTORY.
func TestURLFile(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-emitlog")
	q := brokertest.Bind(t, ex, "fanout", "", true)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "amqp-url"), []byte(url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	emitOne(t, q, "from a file", "-url-file", "amqp-url", "-exchange", ex)
}

// TestJSONLines: with -json, a program's JSON log lines become records
// with their time, level, message and typed attributes; a line that is
// not a JSON object is sent as a message, and counted.
func TestJSONLines(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-emitlog")
	q := brokertest.Bind(t, ex, "fanout", "", true)
	stdin := strings.NewReader(`{"time":"2026-12-01T10:00:00.5Z","level":"warning","msg":"slow","ms":1500,"ok":false,"req":{"id":"r1"}}
{"level":7,"msg":"odd level","tags":["a","b"]}
not json
`)
	var stderr bytes.Buffer
	if err := Run(context.Background(), []string{"-url", url, "-exchange", ex, "-json"}, stdin, io.Discard, &stderr); err != nil {
		t.Fatalf("Run: %v (%s)", err, stderr.String())
	}
	for _, want := range []string{
		`{"time":"2026-12-01T10:00:00.5Z","level":"WARN","msg":"slow","ms":1500,"ok":false,"req":{"id":"r1"}}`,
		`"level":"INFO","msg":"odd level","source_level":7,"tags":"[\"a\",\"b\"]"}`,
		`"level":"INFO","msg":"not json"}`,
	} {
		d := q.Next(t, 10*time.Second)
		if got := string(d.Body); got != want && (strings.HasPrefix(want, "{") || !strings.HasSuffix(got, want)) {
			t.Errorf("got  %s\nwant %s", d.Body, want)
		}
	}
	if !strings.Contains(stderr.String(), "1 lines were not a JSON object") {
		t.Errorf("stderr: %q", stderr.String())
	}
}

func TestUnreachableFailsWithinTimeout(t *testing.T) {
	var stderr bytes.Buffer
	start := time.Now()
	err := Run(context.Background(), []string{"-url", "amqp://guest:s3cret@" + brokertest.FreeAddr(t) + "/", "-timeout", "300ms", "hello"}, nil, io.Discard, &stderr)
	var out bytes.Buffer
	if code := exitCode(err, &out); code != 1 || !strings.Contains(out.String(), "not delivered") {
		t.Errorf("exit %d: %s", code, out.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v with -timeout 300ms", d)
	}
	if strings.Contains(stderr.String()+out.String(), "s3cret") {
		t.Errorf("password printed:\n%s%s", stderr.String(), out.String())
	}
}
