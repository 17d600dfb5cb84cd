package faults

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/logfan/logfan/internal/brokertest"
	"github.com/logfan/logfan/slogamqp"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
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

// startApp makes sure the broker app runs when the test ends, even if it
// failed halfway.
func startApp(t *testing.T) {
	t.Cleanup(func() {
		exec.Command("rabbitmqctl", "start_app").Run()
		exec.Command("rabbitmqctl", "await_startup").Run()
	})
}

// durableQueue declares a durable exchange and a named durable queue bound
// to it, which outlive closed connections and restarts, and deletes both at
// the end.
func durableQueue(t *testing.T, url string) (exchange, queue string) {
	t.Helper()
	exchange, queue = brokertest.Name("faults"), brokertest.Name("faults-q")
	withChannel(t, url, func(ch *amqp.Channel) {
		if err := ch.ExchangeDeclare(exchange, "fanout", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(queue, "", exchange, false, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() {
		withChannel(t, url, func(ch *amqp.Channel) {
			ch.QueueDelete(queue, false, false, false)
			ch.ExchangeDelete(exchange, false, false)
		})
	})
	return exchange, queue
}

func withChannel(t *testing.T, _ string, f func(*amqp.Channel)) {
	t.Helper()
	f(brokertest.Channel(t))
}

// drainQueue reads every message in queue and returns the distinct values
// of attribute "i", failing on a record seen twice under two message ids.
func drainQueue(t *testing.T, url, queue string) map[int]bool {
	t.Helper()
	got := map[int]bool{}
	ids := map[string]bool{}
	withChannel(t, url, func(ch *amqp.Channel) {
		for {
			d, ok, err := ch.Get(queue, true)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return
			}
			var m map[string]any
			if err := json.Unmarshal(d.Body, &m); err != nil {
				t.Fatalf("body %q: %v", d.Body, err)
			}
			i, ok := m["i"].(float64)
			if !ok {
				continue
			}
			if got[int(i)] && !ids[d.MessageId] {
				t.Fatalf("record %d published twice under two ids", int(i))
			}
			got[int(i)], ids[d.MessageId] = true, true
		}
	})
	return got
}

// newHandler returns a handler on a durable exchange with persistent
// messages, and the errors it reports.
func newHandler(t *testing.T, url, exchange string) (*slogamqp.Handler, <-chan error) {
	t.Helper()
	errs := make(chan error, 100)
	h, err := slogamqp.New(&slogamqp.Options{
		URL: url, Exchange: exchange, Durable: true, Persistent: true,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		OnError: func(err error, retry time.Duration) {
			t.Logf("OnError: %v (retry in %v)", err, retry)
			select {
			case errs <- err:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, errs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	brokertest.WaitFor(t, wait, what, cond)
}

func closeHandler(t *testing.T, h *slogamqp.Handler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func logTimed(t *testing.T, l *slog.Logger, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		start := time.Now()
		l.Info("fault", "i", i)
		if d := time.Since(start); d > 50*time.Millisecond {
			t.Errorf("Handle took %v", d)
		}
	}
}

func checkAll(t *testing.T, url, queue string, h *slogamqp.Handler, n int) {
	t.Helper()
	got := drainQueue(t, url, queue)
	if len(got) != n {
		t.Errorf("queue holds %d distinct records, want %d", len(got), n)
	}
	st := h.Stats()
	if st.Handled != uint64(n) || st.Confirmed != uint64(n) || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
	t.Logf("%d records, %d resent, %d reconnects", n, st.Resent, st.Reconnects)
}

func TestCloseAllConnectionsTenTimes(t *testing.T) {
	url := enabled(t)
	exchange, queue := durableQueue(t, url)
	h, _ := newHandler(t, url, exchange)
	l := slog.New(h)
	const rounds, each = 10, 300
	for r := range rounds {
		logTimed(t, l, r*each, (r+1)*each)
		reconnects := h.Stats().Reconnects
		waitFor(t, "a connection", func() bool { return h.Stats().Connected })
		rabbitmqctl(t, "close_all_connections", "logfan fault test")
		waitFor(t, "a reconnect", func() bool { return h.Stats().Reconnects > reconnects })
	}
	closeHandler(t, h)
	checkAll(t, url, queue, h, rounds*each)
}

func TestBrokerRestart(t *testing.T) {
	url := enabled(t)
	exchange, queue := durableQueue(t, url)
	h, _ := newHandler(t, url, exchange)
	l := slog.New(h)
	logTimed(t, l, 0, 500)
	waitFor(t, "a connection", func() bool { return h.Stats().Connected })
	startApp(t)
	rabbitmqctl(t, "stop_app")
	logTimed(t, l, 500, 1000)
	rabbitmqctl(t, "start_app")
	rabbitmqctl(t, "await_startup")
	logTimed(t, l, 1000, 1500)
	closeHandler(t, h)
	checkAll(t, url, queue, h, 1500)
}

func TestMemoryAlarmBlocksThenResumes(t *testing.T) {
	url := enabled(t)
	exchange, queue := durableQueue(t, url)
	h, errs := newHandler(t, url, exchange)
	l := slog.New(h)
	logTimed(t, l, 0, 100)
	waitFor(t, "the first records confirmed", func() bool { return h.Stats().Confirmed == 100 })

	orig := strings.TrimSpace(rabbitmqctl(t, "eval", "vm_memory_monitor:get_vm_memory_high_watermark()."))
	t.Cleanup(func() { exec.Command("rabbitmqctl", "set_vm_memory_high_watermark", orig).Run() })
	rabbitmqctl(t, "set_vm_memory_high_watermark", "0.000001")
	logTimed(t, l, 100, 600)
	// The broker blocks the connection at the first publish after the
	// alarm, and the handler stops writing, buffering.
	for blocked := false; !blocked; {
		select {
		case err := <-errs:
			blocked = strings.Contains(err.Error(), "blocked")
		case <-time.After(wait):
			t.Fatal("the broker never blocked the connection")
		}
	}
	if st := h.Stats(); st.Buffered == 0 || st.Confirmed >= 600 {
		t.Errorf("stats under the alarm: %+v", st)
	}
	logTimed(t, l, 600, 650)
	rabbitmqctl(t, "set_vm_memory_high_watermark", orig)
	logTimed(t, l, 650, 700)
	closeHandler(t, h)
	checkAll(t, url, queue, h, 700)
}
