package sink

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/logfan/logfan/internal/brokertest"
	"github.com/logfan/logfan/slogamqp"
)

func newProducer(t *testing.T, url, exchange string) *slogamqp.Handler {
	t.Helper()
	return newBatchProducer(t, url, exchange, nil)
}

func newBatchProducer(t *testing.T, url, exchange string, batch *slogamqp.BatchOptions) *slogamqp.Handler {
	t.Helper()
	h, err := slogamqp.New(&slogamqp.Options{URL: url, Exchange: exchange, Batch: batch, OnError: func(err error, _ time.Duration) { t.Logf("handler: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeHandler(t, h) })
	return h
}

func closeHandler(t *testing.T, h *slogamqp.Handler) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Errorf("handler Close: %v", err)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// TestTwoSinksGetEveryRecord runs one sink to a file and one to a screen at
// once: both get every record, in order, whether the producer sends one
// record per message or batches.
func TestTwoSinksGetEveryRecord(t *testing.T) {
	t.Run("per-message", func(t *testing.T) { testTwoSinks(t, nil) })
	t.Run("batch", func(t *testing.T) { testTwoSinks(t, &slogamqp.BatchOptions{MaxRecords: 64}) })
}

func testTwoSinks(t *testing.T, batch *slogamqp.BatchOptions) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-two-sinks")
	path := filepath.Join(t.TempDir(), "logs", "app.log")
	file, err := NewFile(FileOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var screen brokertest.Buffer
	disk, _, stopDisk := start(t, Options{URL: url, Exchange: ex, Outputs: []Output{file}})
	show, _, stopShow := start(t, Options{URL: url, Exchange: ex, Outputs: []Output{NewScreen(&screen, FormatText, false)}})

	h := newBatchProducer(t, url, ex, batch)
	l := slog.New(h).With("svc", "api")
	const n = 1000
	for i := range n {
		l.Info("request", "i", i)
	}
	closeHandler(t, h)
	waitFor(t, "both sinks to write every record", func() bool {
		return disk.Stats().Written == n && show.Stats().Written == n
	})
	if err := stopDisk(); err != nil {
		t.Fatal(err)
	}
	if err := stopShow(); err != nil {
		t.Fatal(err)
	}

	lines := readLines(t, path)
	if len(lines) != n {
		t.Fatalf("file has %d lines, want %d", len(lines), n)
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil || m["i"] != float64(i) || m["svc"] != "api" {
			t.Fatalf("file line %d: %s (%v)", i, line, err)
		}
	}
	shown := strings.Split(strings.TrimSuffix(screen.String(), "\n"), "\n")
	if len(shown) != n {
		t.Fatalf("screen has %d lines, want %d", len(shown), n)
	}
	for i, line := range shown {
		if !strings.HasSuffix(line, " INFO  request svc=api i="+strconv.Itoa(i)) {
			t.Fatalf("screen line %d: %q", i, line)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("file mode %v (%v), want 0640", fi.Mode().Perm(), err)
	}
}

// TestReconnectReportsGap cuts the sink's connection while the broker
// keeps taking records it cannot deliver to the sink: after reconnecting
// to a new queue, the sink counts them missed, by producer.
func TestReconnectReportsGap(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-gap")
	p := brokertest.NewProxy(t, brokertest.Host(t, url))
	out := &memOutput{}
	s, d, _ := start(t, Options{URL: brokertest.WithHost(t, url, p.Addr()), Exchange: ex, Outputs: []Output{out}})
	h := newProducer(t, url, ex)
	l := slog.New(h)
	for i := range 100 {
		l.Info("before", "i", i)
	}
	waitFor(t, "the first records", func() bool { return s.Stats().Written == 100 })

	p.Refuse(true)
	p.Cut()
	for i := range 50 {
		l.Info("while away", "i", 100+i)
	}
	waitFor(t, "the handler to deliver while the sink is away", func() bool { return h.Stats().Confirmed == 150 })
	p.Refuse(false)
	d.waitConnected()
	for i := range 20 {
		l.Info("after", "i", 150+i)
	}
	waitFor(t, "the records after reconnecting", func() bool { return s.Stats().Written == 120 })
	st := s.Stats()
	if st.Missed != 50 || st.Reconnects != 1 || st.Duplicates != 0 {
		t.Errorf("stats %v", st)
	}
	if !strings.Contains(d.String(), "reconnected") || !strings.Contains(d.String(), "missed 50 records from producer") {
		t.Errorf("diagnostics:\n%s", d.String())
	}
	recs := out.all()
	if got := recs[100].Attrs()[0].Value.Int64(); got != 150 {
		t.Errorf("first record after the gap has i=%d", got)
	}
}

// TestMalformedBodies publishes raw bodies that are not clean records: the
// sink writes each in a safe form, counts it, and goes on.
func TestMalformedBodies(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-malformed")
	path := filepath.Join(t.TempDir(), "app.log")
	file, err := NewFile(FileOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	s, _, stop := start(t, Options{URL: url, Exchange: ex, Outputs: []Output{file}, MaxBody: 1 << 20})

	bodies := []struct {
		body, ctype string
		malformed   bool
	}{
		{"", "", true},
		{"bad \xff\xfe utf8", "text/plain", true},
		{`{"msg": "unterminated`, "application/json", true},
		{strings.Repeat("x", 2<<20), "", true},
		{strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000), "application/json", false},
		{"Info: Hello World", "", false},
		{`{"time":"2026-11-29T09:00:00Z","level":"INFO","msg":"fine"}`, "application/json", false},
	}
	ch := brokertest.Channel(t)
	for _, b := range bodies {
		if err := ch.Publish(ex, "", false, false, amqp.Publishing{ContentType: b.ctype, Body: []byte(b.body)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every body written", func() bool { return s.Stats().Written == uint64(len(bodies)) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Malformed != 4 || st.Received != uint64(len(bodies)) {
		t.Errorf("stats %v", st)
	}
	lines := readLines(t, path)
	if len(lines) != len(bodies) {
		t.Fatalf("%d lines for %d bodies", len(lines), len(bodies))
	}
	for i, line := range lines {
		var m map[string]any
		err := json.Unmarshal([]byte(line), &m)
		if i == 4 {
			continue // deeply nested: the body as published, deeper than encoding/json goes
		}
		if err != nil || (m["malformed"] != nil) != bodies[i].malformed || len(line) > 1<<20+200 {
			t.Errorf("line %d (%d bytes): %.200s (%v)", i, len(line), line, err)
		}
	}
}

// TestRotationAndReopen writes past the size limit while reopening the
// file as SIGHUP does: every record lands exactly once across the files,
// the rotated ones gzipped.
func TestRotationAndReopen(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-rotate")
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	file, err := NewFile(FileOptions{Path: path, MaxSizeMB: 1, Compress: true})
	if err != nil {
		t.Fatal(err)
	}
	s, _, stop := start(t, Options{URL: url, Exchange: ex, Outputs: []Output{file}})
	h := newProducer(t, url, ex)
	l := slog.New(h)
	const n = 8000 // about 3 MB
	pad := strings.Repeat("p", 300)
	for i := range n {
		l.Info("rotate me", "i", i, "pad", pad)
		if i%2000 == 1000 {
			waitFor(t, "records written before a reopen", func() bool { return s.Stats().Written > uint64(i/2) })
			if err := s.Reopen(); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "every record written", func() bool { return s.Stats().Written == n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	gzipped, _ := filepath.Glob(filepath.Join(dir, "*.gz"))
	if len(files) < 3 || len(gzipped) != len(files)-1 {
		t.Errorf("files %v: want the current one and at least two rotated, gzipped", files)
	}
	seen := make([]int, n)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		var rd io.Reader = fh
		if strings.HasSuffix(f, ".gz") {
			if rd, err = gzip.NewReader(fh); err != nil {
				t.Fatal(err)
			}
		}
		sc := bufio.NewScanner(rd)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%s: %q: %v", f, sc.Text(), err)
			}
			seen[int(m["i"].(float64))]++
		}
		fh.Close()
	}
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("record %d written %d times", i, c)
		}
	}
}

// TestBatchesDedupeAndGapsPerRecord publishes batches by hand: a resent
// batch is written once, and records missing between batches count as
// missed, record by record.
func TestBatchesDedupeAndGapsPerRecord(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-batches")
	out := &memOutput{}
	s, _, _ := start(t, Options{URL: url, Exchange: ex, Outputs: []Output{out}})
	ch := brokertest.Channel(t)
	publish := func(seq int64, lines ...string) {
		t.Helper()
		err := ch.Publish(ex, "", false, false, amqp.Publishing{
			ContentType: slogamqp.ContentTypeNDJSON,
			Headers:     amqp.Table{slogamqp.HeaderProducer: "p1", slogamqp.HeaderSeq: seq, slogamqp.HeaderRecords: int64(len(lines))},
			Body:        []byte(strings.Join(lines, "\n")),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	publish(1, `{"msg":"a"}`, `{"msg":"b"}`, `{"msg":"c"}`)
	publish(1, `{"msg":"a"}`, `{"msg":"b"}`, `{"msg":"c"}`) // resent
	publish(6, `{"msg":"f"}`, `not json`)                   // 4 and 5 missing
	waitFor(t, "every record", func() bool { st := s.Stats(); return st.Received == 8 && st.Written == 5 })
	if st := s.Stats(); st.Written != 5 || st.Duplicates != 3 || st.Missed != 2 || st.Malformed != 1 {
		t.Errorf("stats %v", st)
	}
	var msgs []string
	for _, r := range out.all() {
		msgs = append(msgs, r.Msg())
	}
	if got := strings.Join(msgs, ","); got != "a,b,c,f,not json" {
		t.Errorf("written %s", got)
	}
}

func TestLevelFilter(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-level")
	out := &memOutput{}
	s, _, _ := start(t, Options{URL: url, Exchange: ex, Outputs: []Output{out}, Level: slog.LevelWarn})
	h := newProducer(t, url, ex)
	l := slog.New(h)
	l.Info("dropped")
	l.Warn("kept")
	l.Error("kept too")
	waitFor(t, "three records", func() bool { st := s.Stats(); return st.Received == 3 && st.Written == 2 })
	if st := s.Stats(); st.Filtered != 1 || st.Written != 2 {
		t.Errorf("stats %v", st)
	}
	if recs := out.all(); len(recs) != 2 || recs[0].Msg() != "kept" {
		t.Errorf("records %v", recs)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(&Options{URL: "amqp://u:s3cret@h:bad/"}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("bad URL: %v", err)
	}
	if _, err := New(&Options{ExchangeKind: "nope"}); err == nil {
		t.Error("bad exchange kind accepted")
	}
}
