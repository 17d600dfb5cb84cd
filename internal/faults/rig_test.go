package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logfan/logfan/internal/brokertest"
	"github.com/logfan/logfan/sink"
	"github.com/logfan/logfan/slogamqp"
)

// The fault matrix. Each test runs a handler publishing with confirms to a
// durable exchange, a named durable queue that checks the handler's
// promise (every accepted record reaches the broker), and a sink writing to
// a file, which checks the sink's (every record is written once or counted
// in its gap). TestMain prints the figures of every fault.

func TestMain(m *testing.M) {
	brokertest.Main(m, printFigures)
}

const wait = 60 * time.Second // generous: a restart takes seconds

func enabled(t *testing.T) string {
	t.Helper()
	if os.Getenv("LOGFAN_BROKER_FAULTS") != "1" {
		t.Skip("changes the whole broker: run alone with LOGFAN_BROKER_FAULTS=1 (as .ci/run does)")
	}
	return brokertest.URL(t)
}

func rabbitmqctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// stopApp stops the broker app, making sure it runs again when the test
// ends, even if it failed halfway.
func stopApp(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		exec.Command("rabbitmqctl", "start_app").Run()
		exec.Command("rabbitmqctl", "await_startup").Run()
	})
	rabbitmqctl(t, "stop_app")
}

func startApp(t *testing.T) {
	t.Helper()
	rabbitmqctl(t, "start_app")
	rabbitmqctl(t, "await_startup")
}

// trace keeps what the clients report, and shows it only when the test
// fails, so that a passing run prints just the figures.
type trace struct {
	mu    sync.Mutex
	lines []string
}

func newTrace(t *testing.T) *trace {
	tr := &trace{}
	t.Cleanup(func() {
		if t.Failed() {
			tr.mu.Lock()
			defer tr.mu.Unlock()
			t.Log("what the clients reported:\n" + strings.Join(tr.lines, "\n"))
		}
	})
	return tr
}

func (tr *trace) printf(format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.lines = append(tr.lines, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
}

// figures are what a fault cost.
type figures struct {
	fault                           string
	records, dropped, lost, dupes   uint64
	resent, handlerRecon, sinkRecon uint64
	recovery                        time.Duration
}

var (
	figMu   sync.Mutex
	allFigs []figures
)

func printFigures() {
	figMu.Lock()
	defer figMu.Unlock()
	if len(allFigs) == 0 {
		return
	}
	sort.Slice(allFigs, func(i, j int) bool { return allFigs[i].fault < allFigs[j].fault })
	fmt.Printf("\n%-34s %8s %8s %9s %11s %7s %11s %9s\n", "fault", "records", "dropped", "sink gap", "duplicates", "resent", "reconnects", "recovery")
	for _, f := range allFigs {
		fmt.Printf("%-34s %8d %8d %9d %11d %7d %5d + %-3d %9v\n", f.fault, f.records, f.dropped, f.lost, f.dupes, f.resent, f.handlerRecon, f.sinkRecon, f.recovery.Round(time.Millisecond))
	}
}

type rigOptions struct {
	handlerURL, sinkURL string // default: the broker
	handler             slogamqp.Options
	sinkBackoff         time.Duration // default 50ms
	sinkPath            string        // default: a file in a temporary folder
	noSink              bool
	// sinkMode makes the sink durable: "queue" (a quorum queue of its
	// own) or "stream" (a stream read from the first record), with its
	// state beside its file. Default: "", the live exclusive queue.
	sinkMode string
}

// rig is one handler, the durable queue that checks it, and one sink.
type rig struct {
	t               *testing.T
	trace           *trace
	url             string
	exchange, queue string
	h               *slogamqp.Handler
	l               *slog.Logger
	errs            chan error
	s               *sink.Sink
	path            string
	durable         string     // the durable sink's queue or stream
	prior           sink.Stats // what the sinks stopped before r.s counted
	sinkConns       chan struct{}
	writeFails      chan struct{}
	stopSink        func()
	next            int
	cleared         time.Time
	confirmedAtClr  uint64
	recovery        time.Duration
}

func newRig(t *testing.T, url string, o rigOptions) *rig {
	t.Helper()
	r := &rig{t: t, trace: newTrace(t), url: url, errs: make(chan error, 1000), sinkConns: make(chan struct{}, 100), writeFails: make(chan struct{}, 1000)}
	r.exchange, r.queue = brokertest.Name("faults"), brokertest.Name("faults-q")
	ch := brokertest.Channel(t)
	if err := ch.ExchangeDeclare(r.exchange, "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(r.queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(r.queue, "", r.exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ch := brokertest.Channel(t)
		ch.QueueDelete(r.queue, false, false, false)
		ch.ExchangeDelete(r.exchange, false, false)
	})
	if o.handlerURL == "" {
		o.handlerURL = url
	}
	if o.sinkURL == "" {
		o.sinkURL = url
	}
	if !o.noSink {
		r.startSink(o)
	}
	ho := o.handler
	ho.URL, ho.Exchange, ho.Durable, ho.Persistent = o.handlerURL, r.exchange, true, true
	if ho.MinBackoff == 0 {
		ho.MinBackoff, ho.MaxBackoff = 50*time.Millisecond, 500*time.Millisecond
	}
	ho.OnError = func(err error, retry time.Duration) {
		r.trace.printf("handler: %v (retry in %v)", err, retry)
		select {
		case r.errs <- err:
		default:
		}
	}
	h, err := slogamqp.New(&ho)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(canceled()) })
	r.h, r.l = h, slog.New(h)
	return r
}

func (r *rig) startSink(o rigOptions) {
	t := r.t
	if r.s != nil {
		r.stopSink()
		ss := r.s.Stats()
		r.prior.Written += ss.Written
		r.prior.Duplicates += ss.Duplicates
		r.prior.Reconnects += ss.Reconnects + 1
	}
	r.path = o.sinkPath
	if r.path == "" {
		r.path = filepath.Join(t.TempDir(), "app.log")
	}
	file, err := sink.NewFile(sink.FileOptions{Path: r.path})
	if err != nil {
		t.Fatal(err)
	}
	backoff := o.sinkBackoff
	if backoff == 0 {
		backoff = 50 * time.Millisecond
	}
	so := &sink.Options{URL: o.sinkURL, Exchange: r.exchange, Durable: true, Outputs: []sink.Output{file},
		MinBackoff: backoff, MaxBackoff: backoff, Heartbeat: o.handler.Heartbeat, Diag: diagWriter{r.trace, r.sinkConns, r.writeFails}}
	if o.sinkMode != "" {
		if r.durable == "" {
			r.durable = brokertest.Name("faults-durable")
			t.Cleanup(func() { brokertest.Channel(t).QueueDelete(r.durable, false, false, false) })
		}
		so.StatePath = r.path + ".state"
		if o.sinkMode == "queue" {
			so.Queue = r.durable
		} else {
			so.Stream, so.StreamFrom = r.durable, "first"
		}
	}
	r.s, err = sink.New(so)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.s.Run(ctx) }()
	var once sync.Once
	r.stopSink = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("sink: %v", err)
			}
		})
	}
	t.Cleanup(r.stopSink)
}

// diagWriter logs the sink's diagnostics and signals its connections and
// failed writes.
type diagWriter struct {
	trace *trace
	conns chan struct{}
	fails chan struct{}
}

func (d diagWriter) Write(p []byte) (int, error) {
	d.trace.printf("sink: %s", strings.TrimSpace(string(p)))
	for word, c := range map[string]chan struct{}{"connected": d.conns, "write failed": d.fails} {
		if strings.Contains(string(p), word) {
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}
	return len(p), nil
}

// sinkConnected waits for the sink's next (re)connection.
func (r *rig) sinkConnected() {
	r.t.Helper()
	select {
	case <-r.sinkConns:
	case <-time.After(wait):
		r.t.Fatal("sink did not connect")
	}
}

// log logs n records, checking that no Handle call is slow whatever the
// broker does.
func (r *rig) log(n int) {
	r.t.Helper()
	for range n {
		start := time.Now()
		r.l.Info("fault", "i", r.next)
		r.next++
		// Generous: a network wait would take seconds, while a loaded
		// 2-core machine can pause a goroutine for tens of milliseconds.
		if d := time.Since(start); d > 250*time.Millisecond {
			r.t.Errorf("Handle took %v", d)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	brokertest.WaitFor(t, wait, what, cond)
}

// delivered waits until the broker confirmed every record logged so far.
func (r *rig) delivered() {
	r.t.Helper()
	waitFor(r.t, "the handler to deliver", func() bool { return r.h.Stats().Confirmed == uint64(r.next) })
}

// clear marks the end of a fault; recovery is measured from here to the
// next record the broker confirms.
func (r *rig) clear() {
	r.cleared = time.Now()
	r.confirmedAtClr = r.h.Stats().Confirmed
}

// finish logs a last few records, closes everything and checks both
// promises; it returns the fault's figures.
func (r *rig) finish(fault string) figures {
	t := r.t
	t.Helper()
	r.log(100)
	if !r.cleared.IsZero() {
		waitFor(t, "recovery", func() bool { return r.h.Stats().Confirmed > r.confirmedAtClr })
		r.recovery = time.Since(r.cleared)
	}
	r.untilSinkSees()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := r.h.Close(ctx); err != nil && !(errors.Is(err, slogamqp.ErrDropped) && !errors.Is(err, slogamqp.ErrUndelivered)) {
		t.Fatalf("Close: %v", err)
	}
	st := r.h.Stats()
	if st.Handled != st.Confirmed+st.Dropped+st.Undelivered || st.Buffered != 0 || st.Published != st.Confirmed {
		t.Errorf("handler stats do not add up: %+v", st)
	}
	// The handler's promise: every record it kept reached the broker.
	inQueue := r.queued()
	if want := st.Handled - st.Dropped; uint64(len(inQueue)) != want {
		t.Errorf("the broker holds %d distinct records, want %d (stats %+v)", len(inQueue), want, st)
	}
	f := figures{fault: fault, records: st.Handled, dropped: st.Dropped, resent: st.Resent, handlerRecon: st.Reconnects, recovery: r.recovery}
	if r.s != nil {
		// The sink's promise: each record is written once or counted.
		n := uint64(len(inQueue)) + st.DropReports
		waitFor(t, "the sink's last record", func() bool { ss := r.sinkStats(); return ss.Written+ss.Missed >= n })
		r.stopSink()
		written := r.written()
		ss := r.sinkStats()
		if uint64(written)+ss.Missed != n {
			t.Errorf("sink wrote %d and missed %d, of %d records (stats %v)", written, ss.Missed, n, ss)
		}
		f.lost, f.dupes, f.sinkRecon = ss.Missed, ss.Duplicates, ss.Reconnects
	}
	t.Logf("%s: %+v", fault, f)
	figMu.Lock()
	allFigs = append(allFigs, f)
	figMu.Unlock()
	return f
}

// sinkStats are the sink's counters, with what the sinks before it, in
// this rig, wrote and dropped as duplicates.
func (r *rig) sinkStats() sink.Stats {
	ss := r.s.Stats()
	ss.Written += r.prior.Written
	ss.Duplicates += r.prior.Duplicates
	ss.Reconnects += r.prior.Reconnects
	return ss
}

// untilSinkSees logs more records until the sink has accounted for every
// record confirmed so far. A sink that bound its new queue after the last
// records went out cannot know of them; records after those show it the
// gap.
func (r *rig) untilSinkSees() {
	if r.s == nil {
		return
	}
	for round := 1; ; round++ {
		waitFor(r.t, "the handler to deliver", func() bool {
			st := r.h.Stats()
			return st.Confirmed+st.Dropped+st.Undelivered == st.Handled
		})
		st := r.h.Stats()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if ss := r.sinkStats(); ss.Written+ss.Missed >= st.Confirmed+st.DropReports {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		if round == 5 {
			var stacks strings.Builder
			pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			r.t.Fatalf("the sink never caught up: %v, handler %+v; goroutines:\n%s", r.s.Stats(), st, stacks.String())
		}
		r.log(100)
	}
}

// queued reads the check queue: the distinct records that reached the
// broker, failing on a record published twice under two ids.
func (r *rig) queued() map[int]bool {
	t := r.t
	got, ids := map[int]bool{}, map[string]int{}
	ch := brokertest.Channel(t)
	for {
		d, ok, err := ch.Get(r.queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return got
		}
		var m map[string]any
		if err := json.Unmarshal(d.Body, &m); err != nil {
			t.Fatalf("body %q: %v", d.Body, err)
		}
		i, ok := m["i"].(float64)
		if !ok {
			continue // a drop report
		}
		if prev, seen := ids[d.MessageId]; got[int(i)] && (!seen || prev != int(i)) {
			t.Fatalf("record %d published twice under two ids", int(i))
		}
		got[int(i)], ids[d.MessageId] = true, int(i)
	}
}

// written counts the records in the sink's file, drop reports included,
// failing on one written twice.
func (r *rig) written() int {
	t := r.t
	f, err := os.Open(r.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[int]bool{}
	reports := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		i, ok := m["i"].(float64)
		if !ok {
			reports++
			continue
		}
		if seen[int(i)] {
			t.Fatalf("record %d written twice", int(i))
		}
		seen[int(i)] = true
	}
	return len(seen) + reports
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
