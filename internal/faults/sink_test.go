package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logfan/logfan/sink"
)

// runSink runs a sink writing to a file until the returned stop is
// called, and signals each (re)connection. It waits about 2s before
// reconnecting, so that the handler, quicker, publishes records that the
// sink's next queue will never see: a gap it must report.
func runSink(t *testing.T, url, exchange string) (s *sink.Sink, path string, connected <-chan struct{}, stop func()) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "app.log")
	file, err := sink.NewFile(sink.FileOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan struct{}, 100)
	s, err = sink.New(&sink.Options{URL: url, Exchange: exchange, Durable: true, Outputs: []sink.Output{file},
		MinBackoff: 2 * time.Second, MaxBackoff: 2 * time.Second,
		Diag: diagWriter{t, conns}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sink: %v", err)
		}
	}
	t.Cleanup(stop)
	select {
	case <-conns:
	case <-time.After(wait):
		t.Fatal("sink did not connect")
	}
	return s, path, conns, stop
}

type diagWriter struct {
	t     *testing.T
	conns chan struct{}
}

func (d diagWriter) Write(p []byte) (int, error) {
	d.t.Logf("sink: %s", p)
	if strings.Contains(string(p), "connected") {
		d.conns <- struct{}{}
	}
	return len(p), nil
}

// accounted checks that every record is either in the sink's file exactly
// once or counted as missed.
func accounted(t *testing.T, s *sink.Sink, path string, n int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[int]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		i := int(m["i"].(float64))
		if seen[i] {
			t.Fatalf("record %d written twice", i)
		}
		seen[i] = true
	}
	st := s.Stats()
	if len(seen)+int(st.Missed) != n {
		t.Errorf("%d records written + %d missed, want %d (stats %v)", len(seen), st.Missed, n, st)
	}
	t.Logf("sink: %d written, %d missed, %d duplicates dropped, %d reconnects", len(seen), st.Missed, st.Duplicates, st.Reconnects)
}

func TestSinkSurvivesCloseAllConnections(t *testing.T) {
	url := enabled(t)
	exchange, _ := durableQueue(t, url)
	s, path, connected, stop := runSink(t, url, exchange)
	h, _ := newHandler(t, url, exchange)
	l := slog.New(h)
	const rounds, each = 3, 500
	// The first records give the sink each producer's starting seq.
	logTimed(t, l, 0, 100)
	waitFor(t, "the first records", func() bool { return s.Stats().Written == 100 })
	for r := range rounds {
		rabbitmqctl(t, "close_all_connections", "logfan fault test")
		from := 100 + r*each
		logTimed(t, l, from, from+each)
		waitFor(t, "the handler to deliver", func() bool { return h.Stats().Confirmed == uint64(from+each) })
		select {
		case <-connected:
		case <-time.After(wait):
			t.Fatal("sink did not reconnect")
		}
	}
	n := 100 + rounds*each + 100
	logTimed(t, l, n-100, n)
	closeHandler(t, h)
	waitFor(t, "the last record", func() bool { st := s.Stats(); return st.Written+st.Missed >= uint64(n) })
	stop()
	accounted(t, s, path, n)
	if st := s.Stats(); st.Reconnects != rounds || st.Missed == 0 {
		t.Errorf("stats %v: want %d reconnects and a gap", st, rounds)
	}
}

func TestSinkSurvivesBrokerRestart(t *testing.T) {
	url := enabled(t)
	exchange, _ := durableQueue(t, url)
	s, path, connected, stop := runSink(t, url, exchange)
	h, _ := newHandler(t, url, exchange)
	l := slog.New(h)
	logTimed(t, l, 0, 500)
	startApp(t)
	rabbitmqctl(t, "stop_app")
	logTimed(t, l, 500, 1000)
	rabbitmqctl(t, "start_app")
	rabbitmqctl(t, "await_startup")
	waitFor(t, "the handler to deliver", func() bool { return h.Stats().Confirmed == 1000 })
	select {
	case <-connected:
	case <-time.After(wait):
		t.Fatal("sink did not reconnect")
	}
	logTimed(t, l, 1000, 1100)
	closeHandler(t, h)
	waitFor(t, "the last record", func() bool { st := s.Stats(); return st.Written+st.Missed >= 1100 })
	stop()
	accounted(t, s, path, 1100)
	if st := s.Stats(); st.Missed < 500 {
		t.Errorf("stats %v: the 500 records published while the sink was away are not all counted missed", st)
	}
}
