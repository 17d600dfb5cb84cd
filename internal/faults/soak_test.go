package faults

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/logfan/logfan/internal/brokertest"
	"github.com/logfan/logfan/sink"
	"github.com/logfan/logfan/slogamqp"
)

// TestSoak pushes a million records (LOGFAN_SOAK_RECORDS) through a
// handler, the broker and two sinks while a random connection is cut every
// few hundred milliseconds. It runs only with LOGFAN_SOAK=1:
//
//	LOGFAN_BROKER_FAULTS=1 LOGFAN_SOAK=1 go test -run Soak -v -timeout 30m ./internal/faults
func TestSoak(t *testing.T) {
	url := enabled(t)
	if os.Getenv("LOGFAN_SOAK") != "1" {
		t.Skip("long: run with LOGFAN_SOAK=1")
	}
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("LOGFAN_SOAK_RECORDS")); err == nil {
		n = v
	}
	ex := brokertest.Name("soak")
	tr := newTrace(t)
	target := brokertest.Host(t, url)
	proxies := []*brokertest.Proxy{brokertest.NewProxy(t, target), brokertest.NewProxy(t, target), brokertest.NewProxy(t, target)}

	type run struct {
		s    *sink.Sink
		path string
		stop func()
	}
	var sinks []run
	for i, p := range proxies[1:] {
		path := filepath.Join(t.TempDir(), "sink"+strconv.Itoa(i)+".log")
		file, err := sink.NewFile(sink.FileOptions{Path: path, MaxSizeMB: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		conns := make(chan struct{}, 1000)
		s, err := sink.New(&sink.Options{URL: brokertest.WithHost(t, url, p.Addr()), Exchange: ex, Outputs: []sink.Output{file},
			MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Diag: diagWriter{tr, conns, make(chan struct{}, 1000)}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		var once sync.Once
		stop := func() { once.Do(func() { cancel(); <-done }) }
		t.Cleanup(stop)
		<-conns
		sinks = append(sinks, run{s, path, stop})
	}
	h, err := slogamqp.New(&slogamqp.Options{URL: brokertest.WithHost(t, url, proxies[0].Addr()), Exchange: ex,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		OnError: func(err error, retry time.Duration) { tr.printf("handler: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}

	// Cut a random connection every 200 to 800ms while records flow.
	stopCuts := make(chan struct{})
	cutsDone := make(chan int)
	go func() {
		cuts := 0
		for {
			select {
			case <-stopCuts:
				cutsDone <- cuts
				return
			case <-time.After(time.Duration(200+rand.IntN(600)) * time.Millisecond):
				proxies[rand.IntN(len(proxies))].Cut()
				cuts++
			}
		}
	}()
	start := time.Now()
	l := slog.New(h)
	for i := range n {
		// Keep within the buffer: the soak measures loss to faults, not
		// overflow.
		for i%1000 == 0 && h.Stats().Buffered > 8000 {
			time.Sleep(time.Millisecond)
		}
		l.Info("soak", "i", i)
	}
	close(stopCuts)
	cuts := <-cutsDone
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	st := h.Stats()
	if st.Confirmed+st.Dropped != st.Handled || st.Published != st.Confirmed {
		t.Errorf("handler stats do not add up: %+v", st)
	}
	elapsed := time.Since(start)
	for i, sr := range sinks {
		want := st.Confirmed + st.DropReports
		waitFor(t, "the sink's last record", func() bool { ss := sr.s.Stats(); return ss.Written+ss.Missed >= want })
		sr.stop()
		r := &rig{t: t, path: sr.path}
		ss := sr.s.Stats()
		if w := uint64(r.written()); w+ss.Missed != want {
			t.Errorf("sink %d wrote %d and missed %d of %d", i, w, ss.Missed, want)
		}
		t.Logf("sink %d: %v", i, ss)
		figMu.Lock()
		allFigs = append(allFigs, figures{fault: "soak, sink " + strconv.Itoa(i) + ", " + strconv.Itoa(cuts) + " cuts", records: st.Handled,
			dropped: st.Dropped, lost: ss.Missed, dupes: ss.Duplicates, resent: st.Resent, handlerRecon: st.Reconnects, sinkRecon: ss.Reconnects, recovery: elapsed})
		figMu.Unlock()
	}
	t.Logf("%d records in %v, %d cuts: handler %+v", st.Handled, elapsed.Round(time.Millisecond), cuts, st)
}
