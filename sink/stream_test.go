package sink

import (
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logfan/logfan/internal/brokertest"
)

// streamWith publishes n records, "r0".."r<n-1>", to a new stream bound to
// a new exchange, and returns both names.
func streamWith(t *testing.T, n int) (exchange, stream string) {
	t.Helper()
	url := brokertest.URL(t)
	exchange, stream = brokertest.Name("test-stream-ex"), durableQueue(t)
	// A first reader declares the stream and binds it; it keeps what is
	// published after, for every later reader.
	_, _, stop := start(t, Options{URL: url, Exchange: exchange, Stream: stream, Outputs: []Output{&memOutput{}}})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	publish(t, exchange, 0, n)
	return exchange, stream
}

func publish(t *testing.T, exchange string, from, to int) {
	t.Helper()
	h := newProducer(t, brokertest.URL(t), exchange)
	for i := from; i < to; i++ {
		slog.New(h).Info("r" + strconv.Itoa(i))
	}
	closeHandler(t, h)
}

// TestStreamReadersChooseWhereToStart: any number of readers read one
// stream independently, from the first record, from an offset, or from a
// time back.
func TestStreamReadersChooseWhereToStart(t *testing.T) {
	url := brokertest.URL(t)
	ex, stream := streamWith(t, 100)
	for _, tc := range []struct {
		from  string
		first int // the first record the reader gets
	}{{"first", 0}, {"first", 0}, {"1h", 0}, {"60", 60}} {
		out := &memOutput{}
		_, _, stop := start(t, Options{URL: url, Exchange: ex, Stream: stream, StreamFrom: tc.from, Outputs: []Output{out}})
		waitFor(t, "the stream's records from "+tc.from, func() bool { return len(out.all()) == 100-tc.first })
		if got := out.all()[0].Msg(); got != "r"+strconv.Itoa(tc.first) {
			t.Errorf("-from %s: first record %q", tc.from, got)
		}
		stop()
	}
}

// TestStreamFileSinkResumes: a file sink on a stream started again goes on
// after the last record it wrote, with no gap and no duplicate, whatever
// its start says.
func TestStreamFileSinkResumes(t *testing.T) {
	url := brokertest.URL(t)
	ex, stream := streamWith(t, 100)
	path := filepath.Join(t.TempDir(), "app.log")
	run := func(want int) {
		t.Helper()
		f, err := NewFile(FileOptions{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		s, _, stop := start(t, Options{URL: url, Exchange: ex, Stream: stream, StreamFrom: "first", StatePath: path + ".state", Outputs: []Output{f}})
		waitFor(t, "the records", func() bool { return s.Stats().Written == uint64(want) })
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	run(100)
	publish(t, ex, 100, 150)
	run(50)
	lines := readLines(t, path)
	if len(lines) != 150 {
		t.Fatalf("the file has %d lines, want 150", len(lines))
	}
	for i, l := range lines {
		if want := `"msg":"r` + strconv.Itoa(i) + `"`; !strings.Contains(l, want) {
			t.Fatalf("line %d is %s, want %s", i, l, want)
		}
	}
}

func TestStreamOffsetForms(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		from string
		want any
	}{
		{"", "next"}, {"next", "next"}, {"first", "first"}, {"last", "last"},
		{"42", int64(42)}, {"2026-12-01T10:00:00Z", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)},
		{"90m", now.Add(-90 * time.Minute)},
	} {
		got, err := streamOffset(tc.from, now)
		if err != nil || got != tc.want {
			t.Errorf("streamOffset(%q) = %v, %v; want %v", tc.from, got, err, tc.want)
		}
	}
	for _, bad := range []string{"yesterday", "-5", "-1h", "0s"} {
		if _, err := streamOffset(bad, now); err == nil || !strings.Contains(err.Error(), "want first, last, next") {
			t.Errorf("streamOffset(%q): %v", bad, err)
		}
	}
}
