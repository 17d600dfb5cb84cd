package logrecord

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRoundTrip writes records with slog.JSONHandler, parses them back and
// writes them again: the two JSON texts must agree.
func TestRoundTrip(t *testing.T) {
	ts := time.Date(2026, 11, 29, 9, 0, 0, 5e6, time.UTC)
	for _, r := range []slog.Record{
		slog.NewRecord(ts, slog.LevelInfo, "plain", 0),
		func() slog.Record {
			r := slog.NewRecord(ts, slog.LevelWarn+2, "kinds", 0)
			r.AddAttrs(slog.String("s", "a\"b\n"), slog.Int("i", -3), slog.Float64("f", 1.5), slog.Bool("b", false),
				slog.Any("nil", nil), slog.Group("g", slog.Int("x", 1), slog.Group("h", slog.String("y", "z"))))
			return r
		}(),
	} {
		var first, second bytes.Buffer
		slog.NewJSONHandler(&first, &slog.HandlerOptions{Level: slog.LevelDebug}).Handle(context.Background(), r)
		back, err := Parse(bytes.TrimSpace(first.Bytes()))
		if err != nil {
			t.Fatalf("Parse(%s): %v", first.Bytes(), err)
		}
		slog.NewJSONHandler(&second, nil).Handle(context.Background(), back)
		if first.String() != second.String() {
			t.Errorf("round trip\n got %s\nwant %s", second.String(), first.String())
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{"", "plain text", "[1,2]", `{"a":1} trailing`, `{"a":`, "\xff"} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) succeeded", in)
		}
	}
}

func TestParseBoundsDepth(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1000)
	r, err := Parse([]byte(deep))
	if err != nil {
		t.Fatal(err)
	}
	if r.NumAttrs() != 1 {
		t.Errorf("%d attrs", r.NumAttrs())
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"time":"2026-11-29T09:00:00Z","level":"INFO","msg":"hi","a":{"b":[1,2]}}`, `{}`, `{"level":"WARN+2"}`, `{"msg":1}`, `not json`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			return
		}
		// Whatever parses must encode again without error.
		var out bytes.Buffer
		if err := slog.NewJSONHandler(&out, nil).Handle(context.Background(), r); err != nil {
			t.Errorf("re-encoding %q: %v", data, err)
		}
	})
}
