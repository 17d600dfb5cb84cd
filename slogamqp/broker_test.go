package slogamqp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"testing/slogtest"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/logfan/logfan/internal/amqpconn"
	"github.com/logfan/logfan/internal/brokertest"
)

// Integration tests: every one publishes to an exchange of its own, or
// filters by app id on the shared "logs", and reads back through a queue
// bound to it, so that packages can run in parallel on one broker.

const wait = 20 * time.Second // generous: only a failure waits this long

// live returns a handler for a broker at url (the test broker when
// empty), closed at the test's end, and the errors it reports.
func live(t *testing.T, opts Options) (*Handler, <-chan error) {
	t.Helper()
	if opts.URL == "" {
		opts.URL = brokertest.URL(t)
	}
	errs := make(chan error, 1000)
	opts.OnError = func(err error, _ time.Duration) {
		t.Logf("OnError: %v", err)
		select {
		case errs <- err:
		default:
		}
	}
	h, err := New(&opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Close(ctx)
	})
	return h, errs
}

func closeWithin(t *testing.T, h *Handler, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return h.Close(ctx)
}

// collect reads n deliveries, dropping duplicate message ids.
func collect(t *testing.T, q *brokertest.Queue, n int) []amqp.Delivery {
	t.Helper()
	seen := map[string]bool{}
	var out []amqp.Delivery
	for len(out) < n {
		d := q.Next(t, wait)
		if seen[d.MessageId] {
			continue
		}
		seen[d.MessageId] = true
		out = append(out, d)
	}
	return out
}

func TestPublishesEveryRecordWithProperties(t *testing.T) {
	ex := brokertest.Name("test-props")
	q := brokertest.Bind(t, ex, "fanout", "", true)
	h, _ := live(t, Options{Exchange: ex, AppID: "props-app"})
	l := slog.New(h).With("svc", "api")
	const n = 500
	start := time.Now().Truncate(time.Second)
	for i := range n {
		l.Warn("hello", "i", i)
	}
	if err := closeWithin(t, h, wait); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var producer string
	for i, d := range collect(t, q, n) {
		m := decode(t, string(d.Body))
		if m["msg"] != "hello" || m["svc"] != "api" || int(m["i"].(float64)) != i || m["level"] != "WARN" {
			t.Fatalf("message %d: body %s", i, d.Body)
		}
		if d.ContentType != "application/json" || d.AppId != "props-app" || d.DeliveryMode != amqp.Transient {
			t.Fatalf("message %d: content type %q, app id %q, delivery mode %d", i, d.ContentType, d.AppId, d.DeliveryMode)
		}
		if d.Timestamp.Before(start) || d.Timestamp.After(time.Now()) {
			t.Fatalf("message %d: timestamp %v, want the record's time", i, d.Timestamp)
		}
		if i == 0 {
			producer, _ = d.Headers[HeaderProducer].(string)
		}
		if d.Headers[HeaderLevel] != "WARN" || d.Headers[HeaderProducer] != producer || d.Headers[HeaderSeq] != int64(i+1) {
			t.Fatalf("message %d: headers %v", i, d.Headers)
		}
		if want := fmt.Sprintf("%s-%d", producer, i+1); d.MessageId != want {
			t.Fatalf("message %d: id %q, want %q", i, d.MessageId, want)
		}
	}
	q.Quiet(t, 200*time.Millisecond)
	if st := h.Stats(); st.Handled != n || st.Confirmed != n || st.Published != n || st.Dropped != 0 || st.Buffered != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestDefaultsShareTutorialExchange binds a queue to "logs" declared as the
// RabbitMQ tutorial declares it; the broker would refuse either side if the
// declarations differed.
func TestDefaultsShareTutorialExchange(t *testing.T) {
	q := brokertest.Bind(t, "logs", "fanout", "", false)
	app := brokertest.Name("defaults")
	h, errs := live(t, Options{AppID: app})
	slog.New(h).Info("Info: Hello World")
	if err := closeWithin(t, h, wait); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errs:
		t.Fatalf("reported %v", err)
	default:
	}
	for {
		d := q.Next(t, wait)
		if d.AppId == app {
			if m := decode(t, string(d.Body)); m["msg"] != "Info: Hello World" {
				t.Errorf("body %s", d.Body)
			}
			return
		}
	}
}

func TestSlogtestEndToEnd(t *testing.T) {
	var q *brokertest.Queue
	slogtest.Run(t, func(t *testing.T) slog.Handler {
		ex := brokertest.Name("test-slogtest")
		q = brokertest.Bind(t, ex, "fanout", "", true)
		h, _ := live(t, Options{Exchange: ex})
		return h
	}, func(t *testing.T) map[string]any {
		return decode(t, string(q.Next(t, wait).Body))
	})
}

func TestTopicRoutingAndPersistence(t *testing.T) {
	ex := brokertest.Name("test-topic")
	q := brokertest.Bind(t, ex, "topic", "error", true)
	h, _ := live(t, Options{Exchange: ex, ExchangeKind: "topic", Persistent: true})
	l := slog.New(h)
	l.Info("not routed")
	l.Error("routed")
	d := q.Next(t, wait)
	if d.RoutingKey != "error" || d.DeliveryMode != amqp.Persistent || !strings.Contains(string(d.Body), `"msg":"routed"`) {
		t.Errorf("got key %q mode %d body %s", d.RoutingKey, d.DeliveryMode, d.Body)
	}
	q.Quiet(t, 200*time.Millisecond)
}

// TestUnreachableAtStart starts the handler while the broker refuses
// connections: Handle stays fast, and nothing is lost once it answers.
func TestUnreachableAtStart(t *testing.T) {
	ex := brokertest.Name("test-late")
	q := brokertest.Bind(t, ex, "fanout", "", true)
	url := brokertest.URL(t)
	p := brokertest.NewProxy(t, brokertest.Host(t, url))
	p.Refuse(true)
	h, errs := live(t, Options{URL: brokertest.WithHost(t, url, p.Addr()), Exchange: ex, MaxBackoff: 200 * time.Millisecond})
	l := slog.New(h)
	const n = 200
	for i := range n {
		start := time.Now()
		l.Info("early", "i", i)
		if d := time.Since(start); d > 50*time.Millisecond {
			t.Errorf("Handle took %v while the broker was unreachable", d)
		}
	}
	<-errs // it tried, and failed
	if h.Stats().Connected {
		t.Fatal("connected through a refusing proxy")
	}
	p.Refuse(false)
	for i, d := range collect(t, q, n) {
		if got := int(decode(t, string(d.Body))["i"].(float64)); got != i {
			t.Fatalf("message %d has i=%d", i, got)
		}
	}
	if st := h.Stats(); st.Dropped != 0 || st.Handled != n {
		t.Errorf("stats %+v", st)
	}
}

// records splits a delivery into its records, with their sequence
// numbers, checking the properties of batches.
func records(t *testing.T, d amqp.Delivery) (seqs []int64, bodies []map[string]any) {
	t.Helper()
	seq := d.Headers[HeaderSeq].(int64)
	if d.ContentType == ContentTypeJSON {
		return []int64{seq}, []map[string]any{decode(t, string(d.Body))}
	}
	lines := strings.Split(string(d.Body), "\n")
	if d.ContentType != ContentTypeNDJSON || d.Headers[HeaderRecords] != int64(len(lines)) {
		t.Fatalf("content type %q, records header %v, %d lines", d.ContentType, d.Headers[HeaderRecords], len(lines))
	}
	for i, l := range lines {
		seqs = append(seqs, seq+int64(i))
		bodies = append(bodies, decode(t, l))
	}
	return seqs, bodies
}

// TestCutMidStream cuts the connection three times while records flow:
// every record still arrives (at least once), in order of sequence number,
// one per message or in batches.
func TestCutMidStream(t *testing.T) {
	for _, batch := range []*BatchOptions{nil, {MaxRecords: 50}} {
		t.Run(fmt.Sprintf("batch=%v", batch != nil), func(t *testing.T) {
			ex := brokertest.Name("test-cut")
			q := brokertest.Bind(t, ex, "fanout", "", true)
			url := brokertest.URL(t)
			p := brokertest.NewProxy(t, brokertest.Host(t, url))
			h, _ := live(t, Options{URL: brokertest.WithHost(t, url, p.Addr()), Exchange: ex, Batch: batch,
				MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
			l := slog.New(h)
			const rounds, each = 3, 1000
			var seqs []int64
			seen := map[string]bool{}
			// next reads the next message not seen before and returns the
			// highest "i" in it.
			next := func() int {
				for {
					d := q.Next(t, wait)
					if seen[d.MessageId] {
						continue
					}
					seen[d.MessageId] = true
					ss, bodies := records(t, d)
					for k, b := range bodies {
						if int64(b["i"].(float64)) != ss[k]-1 {
							t.Fatalf("record with seq %d has i=%v", ss[k], b["i"])
						}
					}
					seqs = append(seqs, ss...)
					return int(bodies[len(bodies)-1]["i"].(float64))
				}
			}
			for r := range rounds {
				for i := range each {
					l.Info("flowing", "i", r*each+i)
				}
				// A record of this round proves a live connection: cut it.
				for next() < r*each {
				}
				p.Cut()
			}
			for len(seqs) < rounds*each {
				next()
			}
			for i, seq := range seqs {
				if seq != int64(i+1) {
					// The publisher resends what a lost channel left
					// unconfirmed first, in order, so order survives.
					t.Fatalf("record %d has seq %d", i, seq)
				}
			}
			const n = rounds * each
			if err := closeWithin(t, h, wait); err != nil {
				t.Fatal(err)
			}
			st := h.Stats()
			if st.Confirmed != n || st.Reconnects < rounds-1 || p.Accepts() < rounds {
				t.Errorf("stats %+v after %d connections", st, p.Accepts())
			}
			t.Logf("%d records, %d resent, %d reconnects", n, st.Resent, st.Reconnects)
		})
	}
}

// TestBatchLingerBoundsDelay logs fewer records than a batch holds: they
// leave once Linger has passed, in one message.
func TestBatchLingerBoundsDelay(t *testing.T) {
	ex := brokertest.Name("test-linger")
	q := brokertest.Bind(t, ex, "fanout", "", true)
	h, _ := live(t, Options{Exchange: ex, Batch: &BatchOptions{Linger: 50 * time.Millisecond}})
	l := slog.New(h)
	for i := range 3 {
		l.Info("few", "i", i)
	}
	seqs, bodies := records(t, q.Next(t, wait))
	if len(seqs) != 3 || seqs[0] != 1 || bodies[2]["i"] != float64(2) {
		t.Errorf("seqs %v bodies %v", seqs, bodies)
	}
	q.Quiet(t, 100*time.Millisecond)
	if st := h.Stats(); st.Confirmed != 3 || st.Published != 3 {
		t.Errorf("stats %+v", st)
	}
}

// TestStallDetected stalls the network without closing it: heartbeats and
// write deadlines notice, Handle keeps its speed, and records flow again
// once the network does.
func TestStallDetected(t *testing.T) {
	ex := brokertest.Name("test-stall")
	q := brokertest.Bind(t, ex, "fanout", "", true)
	url := brokertest.URL(t)
	p := brokertest.NewProxy(t, brokertest.Host(t, url))
	h, errs := live(t, Options{URL: brokertest.WithHost(t, url, p.Addr()), Exchange: ex,
		Heartbeat: time.Second, WriteTimeout: time.Second, MaxBackoff: 200 * time.Millisecond})
	l := slog.New(h)
	l.Info("before")
	q.Next(t, wait)
	p.Stall()
	const n = 100
	for i := range n {
		start := time.Now()
		l.Info("during", "i", i)
		if d := time.Since(start); d > 50*time.Millisecond {
			t.Errorf("Handle took %v during a stall", d)
		}
	}
	select {
	case err := <-errs:
		t.Logf("stall noticed: %v", err)
	case <-time.After(wait):
		t.Fatal("stall not noticed")
	}
	p.Resume()
	seen := map[int]bool{}
	for len(seen) < n {
		d := q.Next(t, wait)
		if i, ok := decode(t, string(d.Body))["i"].(float64); ok {
			seen[int(i)] = true
		} // else "before", resent: its confirm may have been lost in the stall

	}
}

// TestExchangeMismatchRefused declares the exchange as direct before the
// handler wants it as fanout: the refusal names its cause and is retried at
// the maximum backoff, not in a loop.
func TestExchangeMismatchRefused(t *testing.T) {
	t.Run("kind", func(t *testing.T) {
		ex := brokertest.Name("test-mismatch")
		brokertest.Bind(t, ex, "direct", "", true)
		testMismatch(t, ex, "inequivalent arg 'type'")
	})
	t.Run("durability", func(t *testing.T) {
		ex := brokertest.Name("test-mismatch")
		ch := brokertest.Channel(t)
		if err := ch.ExchangeDeclare(ex, "fanout", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { brokertest.Channel(t).ExchangeDelete(ex, false, false) })
		testMismatch(t, ex, "inequivalent arg 'durable'")
	})
}

func testMismatch(t *testing.T, ex, clash string) {
	h, errs := live(t, Options{Exchange: ex, MinBackoff: time.Millisecond, MaxBackoff: 300 * time.Millisecond})
	start := time.Now()
	slog.New(h).Info("never delivered")
	err := <-errs
	if !amqpconn.IsRefused(err) || !strings.Contains(err.Error(), "precondition failed") || !strings.Contains(err.Error(), ex) || !strings.Contains(err.Error(), clash) {
		t.Fatalf("error %v, want a refusal naming the exchange and the clash", err)
	}
	<-errs
	<-errs
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("three refusals within %v: retried faster than MaxBackoff", d)
	}
	if st := h.Stats(); st.Connected || !amqpconn.IsRefused(st.LastError) || st.Buffered != 1 {
		t.Errorf("stats %+v", st)
	}
	h.Close(canceled()) // the record can never be delivered: do not wait for it
}

func TestCloseUnreachableReturnsByDeadline(t *testing.T) {
	url := brokertest.URL(t)
	p := brokertest.NewProxy(t, brokertest.Host(t, url))
	p.Refuse(true)
	var fb brokertest.Buffer
	h, _ := live(t, Options{URL: brokertest.WithHost(t, url, p.Addr()), Exchange: brokertest.Name("test-close"),
		Fallback: slog.NewJSONHandler(&fb, nil)})
	l := slog.New(h).With("k", "v")
	for i := range 10 {
		l.Error("stuck", "i", i)
	}
	start := time.Now()
	err := closeWithin(t, h, 300*time.Millisecond)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with a 300ms deadline", d)
	}
	if !errors.Is(err, ErrUndelivered) || errors.Is(err, ErrDropped) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "10 of 10 records not delivered") {
		t.Errorf("Close: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(fb.String()), "\n")
	if len(lines) != 10 || !strings.Contains(lines[9], `"msg":"stuck","k":"v","i":9`) {
		t.Errorf("fallback got:\n%s", fb.String())
	}
	if st := h.Stats(); st.Undelivered != 10 || st.Handled != 10 || st.Buffered != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestDropReportAfterRecovery overflows the buffer during an outage; after
// recovery the kept records arrive, then one record telling the drop count.
func TestDropReportAfterRecovery(t *testing.T) {
	ex := brokertest.Name("test-drops")
	q := brokertest.Bind(t, ex, "fanout", "", true)
	url := brokertest.URL(t)
	p := brokertest.NewProxy(t, brokertest.Host(t, url))
	p.Refuse(true)
	h, errs := live(t, Options{URL: brokertest.WithHost(t, url, p.Addr()), Exchange: ex, BufferRecords: 10, MaxBackoff: 100 * time.Millisecond})
	l := slog.New(h)
	for i := range 25 {
		l.Info("outage", "i", i)
	}
	<-errs
	p.Refuse(false)
	for i := range 10 {
		if m := decode(t, string(q.Next(t, wait).Body)); int(m["i"].(float64)) != i {
			t.Fatalf("record %d: %v", i, m)
		}
	}
	m := decode(t, string(q.Next(t, wait).Body))
	if m["msg"] != "slogamqp: records dropped" || m["dropped"] != float64(15) || m["level"] != "WARN" {
		t.Errorf("drop report %v", m)
	}
	// Close's error counts the dropped records, though they were reported.
	if err := closeWithin(t, h, wait); !errors.Is(err, ErrDropped) || errors.Is(err, ErrUndelivered) || !strings.Contains(err.Error(), "15 of 25 records not delivered: 15 dropped") {
		t.Fatalf("Close: %v", err)
	}
	if st := h.Stats(); st.Dropped != 15 || st.Confirmed != 10 || st.DropReports != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestTLS publishes over amqps:// through a TLS listener whose certificate
// a CA made by the test signed: it works with that CA, and fails clearly
// with another one, verifying the server by default.
func TestTLS(t *testing.T) {
	url := brokertest.URL(t)
	ca := brokertest.NewCA(t)
	p := brokertest.NewTLSProxy(t, ca, brokertest.Host(t, url))
	_, port, _ := net.SplitHostPort(p.Addr())
	tlsURL := strings.Replace(brokertest.WithHost(t, url, "localhost:"+port), "amqp://", "amqps://", 1)

	t.Run("trusted", func(t *testing.T) {
		ex := brokertest.Name("test-tls")
		q := brokertest.Bind(t, ex, "fanout", "", true)
		h, _ := live(t, Options{URL: tlsURL, TLSConfig: &tls.Config{RootCAs: ca.Pool}, Exchange: ex})
		slog.New(h).Info("over TLS")
		if m := decode(t, string(q.Next(t, wait).Body)); m["msg"] != "over TLS" {
			t.Errorf("got %v", m)
		}
	})
	t.Run("unknown CA", func(t *testing.T) {
		h, errs := live(t, Options{URL: tlsURL, TLSConfig: &tls.Config{RootCAs: brokertest.NewCA(t).Pool}, Exchange: brokertest.Name("test-tls")})
		if err := <-errs; !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Errorf("error %v, want it to name the certificate problem", err)
		}
		if st := h.Stats(); st.Connected || st.Confirmed != 0 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("system roots by default", func(t *testing.T) {
		_, errs := live(t, Options{URL: tlsURL, Exchange: brokertest.Name("test-tls")})
		if err := <-errs; !strings.Contains(err.Error(), "certificate") {
			t.Errorf("error %v, want a certificate error", err)
		}
	})
}

// TestRefusalsNameTheirCause: a wrong password and a missing virtual host
// are refusals that retrying cannot fix, reported with their cause and
// without the password, and retried only at the maximum backoff.
func TestRefusalsNameTheirCause(t *testing.T) {
	url := brokertest.URL(t)
	for _, tc := range []struct {
		name, url, want string
	}{
		{"wrong password", strings.Replace(brokertest.WithHost(t, url, brokertest.Host(t, url)), "://", "://logfan-nobody:s3cret@", 1), "wrong user name or password"},
		{"missing vhost", strings.TrimSuffix(url, "/") + "/logfan-no-such-vhost", "virtual host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type report struct {
				err     error
				retryIn time.Duration
			}
			reports := make(chan report, 10)
			const maxBackoff = 300 * time.Millisecond
			h, err := New(&Options{URL: tc.url, MinBackoff: time.Millisecond, MaxBackoff: maxBackoff, OnError: func(err error, retryIn time.Duration) {
				select {
				case reports <- report{err, retryIn}:
				default:
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close(canceled())
			start := time.Now()
			slog.New(h).Info("the application goes on")
			r := <-reports
			if !amqpconn.IsRefused(r.err) || !strings.Contains(r.err.Error(), tc.want) || strings.Contains(r.err.Error(), "s3cret") {
				t.Errorf("error %q, want a refusal mentioning %q without the password", r.err, tc.want)
			}
			if r.retryIn != maxBackoff {
				t.Errorf("retry in %v, want the maximum backoff %v", r.retryIn, maxBackoff)
			}
			<-reports
			if d := time.Since(start); d < maxBackoff {
				t.Errorf("second attempt after %v, sooner than the maximum backoff", d)
			}
			if st := h.Stats(); st.Buffered != 1 || st.Connected {
				t.Errorf("stats %+v", st)
			}
		})
	}
}
