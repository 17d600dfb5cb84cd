package sink

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/logfan/logfan/internal/brokertest"
)

// durableQueue names a quorum queue for the test and deletes it at the end.
func durableQueue(t *testing.T) string {
	t.Helper()
	q := brokertest.Name("test-quorum")
	t.Cleanup(func() { brokertest.Channel(t).QueueDelete(q, false, false, false) })
	return q
}

func msgs(rs []Record) map[string]int {
	out := map[string]int{}
	for _, r := range rs {
		out[r.Msg()]++
	}
	return out
}

// TestQueueKeepsRecordsWhileNoSinkRuns: with -queue, what is published
// while the sink is stopped waits for it.
func TestQueueKeepsRecordsWhileNoSinkRuns(t *testing.T) {
	url := brokertest.URL(t)
	ex, queue := brokertest.Name("test-keep"), durableQueue(t)
	_, _, stop := start(t, Options{URL: url, Exchange: ex, Queue: queue, Outputs: []Output{&memOutput{}}})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	h := newProducer(t, url, ex)
	const n = 500
	for i := range n {
		slog.New(h).Info("kept " + strings.Repeat("x", i%7))
	}
	closeHandler(t, h)
	out := &memOutput{}
	s, _, _ := start(t, Options{URL: url, Exchange: ex, Queue: queue, Outputs: []Output{out}})
	waitFor(t, "every record kept while no sink ran", func() bool { return len(out.all()) == n })
	if st := s.Stats(); st.Missed != 0 || st.Duplicates != 0 {
		t.Errorf("stats %v", st)
	}
}

// TestSinksShareAQueue: two sinks on one queue write every record once
// between them, and count no gap for the other's share.
func TestSinksShareAQueue(t *testing.T) {
	url := brokertest.URL(t)
	ex, queue := brokertest.Name("test-share"), durableQueue(t)
	a, b := &memOutput{}, &memOutput{}
	sa, _, _ := start(t, Options{URL: url, Exchange: ex, Queue: queue, Outputs: []Output{a}, Prefetch: 10})
	sb, _, _ := start(t, Options{URL: url, Exchange: ex, Queue: queue, Outputs: []Output{b}, Prefetch: 10})
	h := newProducer(t, url, ex)
	const n = 2000
	for i := range n {
		slog.New(h).Info("shared", "i", i)
	}
	waitFor(t, "every record", func() bool { return len(a.all())+len(b.all()) == n })
	seen := map[string]bool{}
	for _, r := range append(a.all(), b.all()...) {
		if seen[string(r.JSON)] {
			t.Fatalf("written twice: %s", r.JSON)
		}
		seen[string(r.JSON)] = true
	}
	if len(a.all()) == 0 || len(b.all()) == 0 || sa.Stats().Missed != 0 || sb.Stats().Missed != 0 {
		t.Errorf("shares %d and %d; stats %v and %v", len(a.all()), len(b.all()), sa.Stats(), sb.Stats())
	}
}

// TestSingleActiveFailsOver: with SingleActive, one sink takes every
// record, and its standby takes over when it stops, losing nothing.
func TestSingleActiveFailsOver(t *testing.T) {
	url := brokertest.URL(t)
	ex, queue := brokertest.Name("test-single"), durableQueue(t)
	active, standby := &memOutput{}, &memOutput{}
	_, _, stopActive := start(t, Options{URL: url, Exchange: ex, Queue: queue, SingleActive: true, Outputs: []Output{active}})
	start(t, Options{URL: url, Exchange: ex, Queue: queue, SingleActive: true, Outputs: []Output{standby}})
	h := newProducer(t, url, ex)
	l := slog.New(h)
	for i := range 300 {
		l.Info("before", "i", i)
	}
	waitFor(t, "the active sink", func() bool { return len(active.all()) == 300 })
	if len(standby.all()) != 0 {
		t.Fatalf("the standby wrote %d records while the active one ran", len(standby.all()))
	}
	if err := stopActive(); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		l.Info("after", "i", i)
	}
	waitFor(t, "the standby to take over", func() bool { return len(standby.all()) == 300 })
	if m := msgs(standby.all()); m["after"] != 300 {
		t.Errorf("the standby wrote %v", m)
	}
}

// TestQueueWithOtherArgumentsRefused: a queue that exists as a classic
// queue is refused with the broker's cause, retried at the maximum wait.
func TestQueueWithOtherArgumentsRefused(t *testing.T) {
	url := brokertest.URL(t)
	queue := durableQueue(t)
	if _, err := brokertest.Channel(t).QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "classic"}); err != nil {
		t.Fatal(err)
	}
	d := newDiag(t)
	s, err := New(&Options{URL: url, Exchange: brokertest.Name("test-clash"), Queue: queue, Diag: d, Outputs: []Output{&memOutput{}},
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := runSink(t, s)
	defer stop()
	waitFor(t, "the refusal", func() bool { return strings.Contains(d.String(), "precondition failed") })
	if line := d.String(); !strings.Contains(line, queue) || !strings.Contains(line, "quorum") {
		t.Errorf("diagnostics: %s", line)
	}
}

// gate is an output whose writes wait until it opens: a sink that falls
// behind.
type gate struct {
	memOutput
	open chan struct{}
}

func (g *gate) Write(r *Record) error {
	<-g.open
	return g.memOutput.Write(r)
}

// TestDropHeadGapCountedExactly: a sink that falls behind its bounded
// queue loses the oldest records to drop-head, and counts exactly those as
// missed (with one active sink, gaps are its own).
func TestDropHeadGapCountedExactly(t *testing.T) {
	url := brokertest.URL(t)
	ex, queue := brokertest.Name("test-drophead"), durableQueue(t)
	g := &gate{open: make(chan struct{})}
	s, _, _ := start(t, Options{URL: url, Exchange: ex, Queue: queue, SingleActive: true, QueueMaxBytes: 20000, Prefetch: 10, Outputs: []Output{g}})
	h := newProducer(t, url, ex)
	const n = 1000 // about 100 KB: five times the bound
	for i := range n {
		slog.New(h).Info("overflowing", "i", i)
	}
	closeHandler(t, h)
	close(g.open)
	waitFor(t, "the last record", func() bool { st := s.Stats(); return st.Written+st.Missed == n })
	if st := s.Stats(); st.Missed == 0 || st.Duplicates != 0 {
		t.Errorf("stats %v: want drop-head's records counted as missed", st)
	}
}

// TestStopDrainsALiveQueue: records confirmed to their producer wait in a
// live sink's queue, not yet pushed to it (a prefetch of one, a write
// held); stopping the sink takes them all before the broker deletes the
// queue with the connection.
func TestStopDrainsALiveQueue(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-drain")
	g := &gate{open: make(chan struct{})}
	s, _, stop := start(t, Options{URL: url, Exchange: ex, Prefetch: 1, Outputs: []Output{g}})
	h := newProducer(t, url, ex)
	const n = 300
	for i := range n {
		slog.New(h).Info("queued", "i", i)
	}
	closeHandler(t, h) // every record confirmed: in the sink's queue
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	waitFor(t, "the sink to start stopping", func() bool { return s.Stats().Received >= 1 })
	close(g.open)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Written != n || len(g.all()) != n {
		t.Errorf("stats %v, %d written: want all %d records drained", st, len(g.all()), n)
	}
}
