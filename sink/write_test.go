package sink

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logfan/logfan/internal/brokertest"
)

// TestStopWritesNoRecordTwice: a sink writing to the screen and to a file
// that fails is stopped while it holds a group; the screen, which took the
// group, must not get it again.
func TestStopWritesNoRecordTwice(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-stop-twice")
	path := filepath.Join(t.TempDir(), "app.log")
	if err := os.Symlink("/dev/full", path); err != nil { // every write: ENOSPC
		t.Fatal(err)
	}
	file, err := NewFile(FileOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var screen brokertest.Buffer
	s, d, stop := start(t, Options{URL: url, Exchange: ex, Outputs: []Output{NewScreen(&screen, FormatJSON, false), file}})
	h := newProducer(t, url, ex)
	const n = 300
	for i := range n {
		slog.New(h).Info("held", "i", i)
	}
	waitFor(t, "a failed write", func() bool { return strings.Contains(d.String(), "write failed") })
	if err := stop(); err == nil {
		t.Error("stopped cleanly with the file unwritten")
	}
	lines := strings.Split(strings.TrimSuffix(screen.String(), "\n"), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l] {
			t.Fatalf("the screen got %s twice", l)
		}
		seen[l] = true
	}
	if st := s.Stats(); uint64(len(lines)) != st.Received || st.Written != 0 {
		t.Errorf("the screen got %d lines; stats %v", len(lines), st)
	}
}

// TestReopenKeepsWhatItCannotFlush: SIGHUP's Reopen while the disk is
// full keeps the buffered lines for the reopened file.
func TestReopenKeepsWhatItCannotFlush(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	f, err := NewFile(FileOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, msg := range []string{"one", "two"} {
		r := Record{JSON: []byte(`{"msg":"` + msg + `"}`)}
		if err := f.Write(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Reopen(); err == nil {
		t.Fatal("Reopen flushed to /dev/full without an error")
	}
	os.Remove(path) // space again: the rotation moved the file away
	if err := f.Reopen(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "{\"msg\":\"one\"}\n{\"msg\":\"two\"}\n" {
		t.Errorf("file holds %q", b)
	}
}

// shortWriter takes at most n more bytes, then fails.
type shortWriter struct {
	n   int
	buf strings.Builder
}

func (w *shortWriter) Write(p []byte) (int, error) {
	k := min(len(p), w.n)
	w.n -= k
	w.buf.Write(p[:k])
	if k < len(p) {
		return k, os.ErrDeadlineExceeded
	}
	return k, nil
}

// TestTornScreenLineEndedAndCounted: where a cut line cannot be taken
// back (a pipe), the retry ends it and writes the record again whole on a
// line of its own, and the torn line is counted.
func TestTornScreenLineEndedAndCounted(t *testing.T) {
	w := &shortWriter{n: 20}
	s := NewScreen(w, FormatJSON, false)
	for _, msg := range []string{"first", "second"} {
		r := Decode([]byte(`{"msg":"`+msg+`"}`), "application/json", time.Time{}, 0)
		if err := s.Write(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err == nil {
		t.Fatal("short write not reported")
	}
	w.n = 1 << 20
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(w.buf.String(), "\n"), "\n")
	want := []string{`{"msg":"first"}`, `{"ms`, `{"msg":"second"}`}
	if strings.Join(got, "|") != strings.Join(want, "|") || s.Torn() != 1 {
		t.Errorf("screen got %q, torn %d; want %q, torn 1", got, s.Torn(), want)
	}
}

// TestSinkBindsAgainAfterExchangeDeleted: the broker deletes a queue's
// binding with its exchange and tells no consumer; the sink declares and
// binds again, so that records published after the exchange came back
// reach it.
func TestSinkBindsAgainAfterExchangeDeleted(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-rebind")
	out := &memOutput{}
	start(t, Options{URL: url, Exchange: ex, Outputs: []Output{out}})
	t.Cleanup(func() { brokertest.Channel(t).ExchangeDelete(ex, false, false) })
	if err := brokertest.Channel(t).ExchangeDelete(ex, false, false); err != nil {
		t.Fatal(err)
	}
	h := newProducer(t, url, ex)
	l := slog.New(h)
	// The producer declares the exchange again at once; the sink within
	// rebindEvery. Until then, records reach no queue.
	waitFor(t, "a record after the deletion", func() bool {
		l.Info("after the deletion")
		return len(out.all()) > 0
	})
}
