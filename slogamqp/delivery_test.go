package slogamqp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/logfan/logfan/internal/brokertest"
)

// Tests of what the handler promises to deliver, or to account for,
// against the real broker.

func count(t *testing.T, queue string) int {
	t.Helper()
	return brokertest.Depth(t, brokertest.Channel(t), queue)
}

func TestBlockDeliversEverything(t *testing.T) {
	ex, queue := brokertest.CheckQueue(t, nil)
	h, _ := live(t, Options{Exchange: ex, BufferRecords: 100, Overflow: Block, BlockTimeout: wait})
	l := slog.New(h)
	const n = 5000 // fifty times the buffer
	for i := range n {
		l.Info("batch job", "i", i)
	}
	if err := closeWithin(t, h, wait); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if st := h.Stats(); st.Dropped != 0 || st.Confirmed != n {
		t.Errorf("stats %+v", st)
	}
	if got := count(t, queue); got != n {
		t.Errorf("queue holds %d records, want %d", got, n)
	}
}

func TestBlockGivesUpAfterTimeoutOrCancel(t *testing.T) {
	h := offline(t, &Options{BufferRecords: 2, Overflow: Block, BlockTimeout: 100 * time.Millisecond})
	l := slog.New(h)
	l.Info("one")
	l.Info("two")
	start := time.Now()
	l.Info("waits, then drops")
	if d := time.Since(start); d < 100*time.Millisecond || d > 5*time.Second {
		t.Errorf("a full buffer held Handle %v with BlockTimeout 100ms", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	start = time.Now()
	l.InfoContext(ctx, "the caller's context ends the wait")
	if d := time.Since(start); d > 90*time.Millisecond {
		t.Errorf("Handle waited %v past its context's end", d)
	}
	if st := h.Stats(); st.Dropped != 2 || st.Buffered != 2 {
		t.Errorf("stats %+v", st)
	}
	// Close wakes a Handle that waits, at once.
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Info("waiting when Close comes")
	}()
	brokertest.WaitFor(t, wait, "Handle to wait", func() bool { return h.Stats().Handled == 5 })
	h.Close(canceled())
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Close left Handle waiting")
	}
}

// drops returns the drop reports that reached q, by count.
func drops(t *testing.T, q *brokertest.Queue, until func(m map[string]any) bool) (reports []float64) {
	t.Helper()
	for {
		m := decode(t, string(q.Next(t, wait).Body))
		if m["msg"] == "slogamqp: records dropped" {
			reports = append(reports, m["dropped"].(float64))
		}
		if until(m) {
			return reports
		}
	}
}

// TestOneDropReportPerStretch overflows a small buffer during an outage
// with a small in-flight window: one report tells all the drops.
func TestOneDropReportPerStretch(t *testing.T) {
	ex := brokertest.Name("test-stretch")
	q := brokertest.Bind(t, ex, "fanout", "", true)
	url := brokertest.URL(t)
	p := brokertest.NewProxy(t, brokertest.Host(t, url))
	h, _ := live(t, Options{URL: brokertest.WithHost(t, url, p.Addr()), Exchange: ex, BufferRecords: 100, MaxInFlight: 10,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	l := slog.New(h)
	p.Refuse(true)
	p.Cut()
	for i := range 1000 {
		l.Info("outage", "i", i)
		if i%100 == 0 {
			p.Refuse(i >= 500) // recovering halfway: drops go on while it catches up
		}
	}
	p.Refuse(false)
	l.Info("last")
	reports := drops(t, q, func(m map[string]any) bool { return m["msg"] == "slogamqp: records dropped" })
	if err := closeWithin(t, h, wait); !errors.Is(err, ErrDropped) {
		t.Fatalf("Close: %v", err)
	}
	st := h.Stats()
	if len(reports) != 1 || uint64(reports[0]) != st.Dropped || st.DropReports != 1 || st.Dropped == 0 {
		t.Errorf("reports %v for stats %+v", reports, st)
	}
}

// TestDropReportAtClose: drops just before Close are reported by Close,
// which does not wait for the stretch to end.
func TestDropReportAtClose(t *testing.T) {
	for _, batch := range []*BatchOptions{nil, {MaxRecords: 7}} {
		ex := brokertest.Name("test-close-drops")
		q := brokertest.Bind(t, ex, "fanout", "", true)
		var fb brokertest.Buffer
		h, _ := live(t, Options{Exchange: ex, BufferRecords: 10, Batch: batch, Fallback: slog.NewJSONHandler(&fb, nil)})
		l := slog.New(h)
		for i := range 1000 {
			l.Info("burst", "i", i)
		}
		if err := closeWithin(t, h, wait); !errors.Is(err, ErrDropped) || errors.Is(err, ErrUndelivered) {
			t.Fatalf("Close: %v", err)
		}
		st := h.Stats()
		var reported float64
		seen := 0
		for seen < int(st.Confirmed)+1 {
			d := q.Next(t, wait)
			_, bodies := records(t, d)
			for _, m := range bodies {
				seen++
				if m["msg"] == "slogamqp: records dropped" {
					reported += m["dropped"].(float64)
				}
			}
		}
		if uint64(reported) != st.Dropped || st.Dropped+st.Confirmed != 1000 {
			t.Errorf("batch %v: reports told %v drops, stats %+v", batch != nil, reported, st)
		}
		// The fallback got the dropped records, and never a drop report.
		if strings.Contains(fb.String(), "records dropped") || strings.Count(fb.String(), "\n") != int(st.Dropped) {
			t.Errorf("fallback got %d lines for %d drops", strings.Count(fb.String(), "\n"), st.Dropped)
		}
	}
}

// TestNackIsRetriedThenUndelivered binds a full reject-publish queue beside
// a normal one: the broker nacks every record. Each is sent again
// maxNackRetries times, no more, on the same connection.
func TestNackIsRetriedThenUndelivered(t *testing.T) {
	ex, normal := brokertest.CheckQueue(t, nil)
	full := brokertest.Name("test-full")
	brokertest.BindQueue(t, ex, full, amqp.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"})
	var fb brokertest.Buffer
	h, _ := live(t, Options{Exchange: ex, MinBackoff: 20 * time.Millisecond, Fallback: slog.NewJSONHandler(&fb, nil)})
	const n = 10
	for i := range n {
		slog.New(h).Info("refused", "i", i)
	}
	brokertest.WaitFor(t, wait, "every record given up", func() bool { return h.Stats().Undelivered == n })
	err := closeWithin(t, h, wait)
	var de *DeliveryError
	if !errors.As(err, &de) || !errors.Is(err, ErrUndelivered) || de.Undelivered != n || de.Dropped != 0 {
		t.Fatalf("Close: %v", err)
	}
	st := h.Stats()
	if st.Reconnects != 0 || st.Nacked != n*(maxNackRetries+1) || st.Confirmed != 0 {
		t.Errorf("stats %+v", st)
	}
	// The normal queue took a copy of every send: the first and the retries.
	if got := count(t, normal); got != n*(maxNackRetries+1) {
		t.Errorf("the normal queue holds %d copies of %d records, want %d", got, n, n*(maxNackRetries+1))
	}
	if strings.Count(fb.String(), `"msg":"refused"`) != n {
		t.Errorf("fallback got:\n%s", fb.String())
	}
}

// TestCloseWithoutConfirmsIsGraceful: with confirms off, records count as
// delivered once written; Close must still end with the AMQP close
// handshake, so that the broker takes them all.
func TestCloseWithoutConfirmsIsGraceful(t *testing.T) {
	ex, queue := brokertest.CheckQueue(t, nil)
	h, _ := live(t, Options{Exchange: ex, DisableConfirms: true})
	const n = 3000
	for i := range n {
		slog.New(h).Info("fire and forget", "i", i)
	}
	brokertest.WaitFor(t, wait, "everything written", func() bool { return h.Stats().Buffered == 0 })
	if err := closeWithin(t, h, wait); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The queue's count lags what the broker took: wait for it, and for
	// no more than it.
	ch := brokertest.Channel(t)
	brokertest.WaitFor(t, wait, "every record in the queue", func() bool { return brokertest.Depth(t, ch, queue) >= n })
	if got := brokertest.Depth(t, ch, queue); got != n {
		t.Errorf("the queue holds %d of %d records", got, n)
	}
}

// TestDeletedExchangeDeclaredAgainAtOnce: a 404 on publish is no refusal;
// the next connection declares the exchange again after the first wait.
func TestDeletedExchangeDeclaredAgainAtOnce(t *testing.T) {
	ex := brokertest.Name("test-deleted")
	h, errs := live(t, Options{Exchange: ex, MaxBackoff: time.Minute})
	l := slog.New(h)
	l.Info("before")
	brokertest.WaitFor(t, wait, "the first record", func() bool { return h.Stats().Confirmed == 1 })
	if err := brokertest.Channel(t).ExchangeDelete(ex, false, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { brokertest.Channel(t).ExchangeDelete(ex, false, false) })
	start := time.Now()
	for i := range 100 {
		l.Info("after", "i", i)
	}
	brokertest.WaitFor(t, wait, "every record", func() bool { return h.Stats().Confirmed == 101 })
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v to declare the exchange again", d)
	}
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "404") {
			t.Errorf("reported %v", err)
		}
	default:
		t.Error("the 404 was not reported")
	}
}

// TestCloseHonoursDeadlineInStalledHandshake: a broker that accepts TCP and
// never answers the handshake cannot hold Close past its deadline.
func TestCloseHonoursDeadlineInStalledHandshake(t *testing.T) {
	addr, accepted := silentListener(t)
	h, err := New(&Options{URL: "amqp://guest:guest@" + addr + "/", OnError: func(error, time.Duration) {}})
	if err != nil {
		t.Fatal(err)
	}
	slog.New(h).Info("stuck")
	<-accepted // the dial has reached the handshake
	start := time.Now()
	err = closeWithin(t, h, 500*time.Millisecond)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v with a 500ms deadline", d)
	}
	if !errors.Is(err, ErrUndelivered) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: %v", err)
	}
}

// silentListener accepts connections and never writes a byte; accepted
// is signalled at the first.
func silentListener(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 100)
	first := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() {
		ln.Close()
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			once.Do(func() { close(first) })
			conns <- c
		}
	}()
	return ln.Addr().String(), first
}

// TestBatchMemoryWithinBufferBytes stalls the connection while many small
// batches are in flight: the heap they hold stays within BufferBytes and a
// small constant.
func TestBatchMemoryWithinBufferBytes(t *testing.T) {
	ex := brokertest.Name("test-batch-mem")
	brokertest.Bind(t, ex, "fanout", "", true)
	url := brokertest.URL(t)
	p := brokertest.NewProxy(t, brokertest.Host(t, url))
	const limit = 1 << 20
	h, _ := live(t, Options{URL: brokertest.WithHost(t, url, p.Addr()), Exchange: ex, BufferBytes: limit,
		Batch: &BatchOptions{MaxRecords: 2, Linger: time.Millisecond}, Heartbeat: time.Hour, WriteTimeout: time.Hour})
	l := slog.New(h)
	l.Info("connected")
	brokertest.WaitFor(t, wait, "the first record", func() bool { return h.Stats().Confirmed == 1 })
	live := brokertest.LiveHeap
	before := live()
	p.Stall()
	defer p.Resume()
	for i := range 20000 {
		l.Info("stalled", "i", i)
	}
	brokertest.WaitFor(t, wait, "a full window in flight", func() bool { return h.Stats().Published >= 2*1024 })
	grew := int64(live()) - int64(before)
	if grew > limit+2<<20 {
		t.Errorf("the heap grew by %d bytes with BufferBytes %d; stats %+v", grew, limit, h.Stats())
	}
	t.Logf("heap grew by %d bytes holding %d records in flight", grew, h.Stats().Buffered)
}
