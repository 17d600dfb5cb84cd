// Package brokertest helps tests talk to the real RabbitMQ: it finds the
// broker, binds queues to read back what was published, and puts a TCP
// proxy between a client and the broker that a test can cut or stall.
package brokertest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/logfan/logfan/internal/amqpconn"
)

var (
	probeOnce sync.Once
	probeErr  error
	testURL   string // the broker's URL with the suite's own virtual host
	vhost     string
	vhostErr  error
)

// Main runs a test binary's tests in a virtual host of their own, created
// before and deleted after with rabbitmqctl, so that no test ever touches
// what the broker's users read, such as the "logs" exchange of "/" that
// their sinks bind to. It sets AMQP_URL to that host for the handlers,
// commands and programs the tests start, checks that no goroutine is left
// behind, and runs cleanup, when not nil, last.
func Main(m *testing.M, cleanup func()) {
	base, _ := amqpconn.URLFromEnv("")
	vhost = Name("logfan-test")
	vhostErr = addVhost(base, vhost)
	if vhostErr == nil {
		u, _ := url.Parse(base)
		u.Path, u.RawPath = "/"+vhost, ""
		testURL = u.String()
		os.Setenv("AMQP_URL", testURL)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if cleanup != nil {
			cleanup()
		}
		if vhostErr == nil {
			exec.Command("rabbitmqctl", "-q", "delete_vhost", vhost).Run()
		}
		os.Exit(code)
	}))
}

// addVhost creates vhost and lets the user of base use it.
func addVhost(base, vhost string) error {
	u, err := url.Parse(base)
	if err != nil {
		return amqpconn.RedactError(err, base)
	}
	user := u.User.Username()
	if user == "" {
		user = "guest"
	}
	for _, args := range [][]string{
		{"-q", "add_vhost", vhost},
		{"-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"},
	} {
		if out, err := exec.Command("rabbitmqctl", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("rabbitmqctl %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// Vhost is the name of the suite's virtual host.
func Vhost() string { return vhost }

// URL returns the broker's URL ($AMQP_URL or the default) with the suite's
// own virtual host. When no broker answers, or the virtual host could not
// be made, it skips the test, or fails it when $CI is set, since CI must
// not pass by testing nothing.
func URL(t testing.TB) string {
	t.Helper()
	if vhostErr != nil || testURL == "" {
		msg := "no virtual host for the tests (run them with brokertest.Main, on a machine with rabbitmqctl): "
		if vhostErr != nil {
			msg += vhostErr.Error()
		}
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	u := testURL
	probeOnce.Do(func() {
		var c *amqp.Connection
		c, probeErr = amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
		if probeErr == nil {
			c.Close()
		}
	})
	if probeErr != nil {
		msg := "no RabbitMQ broker at " + amqpconn.Redact(u) + " (set AMQP_URL, or start one with rabbitmq-server -detached): " + amqpconn.RedactError(probeErr, u).Error()
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return u
}

// Name returns a unique name for an exchange or connection of one test.
func Name(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// Queue is an exclusive, server-named queue bound to an exchange, as a
// sink binds one, on a connection of its own.
type Queue struct {
	Name       string
	Deliveries <-chan amqp.Delivery
	Ch         *amqp.Channel
}

// Bind declares exchange (kind, non-durable, as the handler does) and binds
// a new exclusive queue to it with key. The connection closes, and the
// exchange is deleted when deleteExchange is set, at the test's end.
func Bind(t testing.TB, exchange, kind, key string, deleteExchange bool) *Queue {
	t.Helper()
	ch := Channel(t)
	if err := ch.ExchangeDeclare(exchange, kind, false, false, false, false, nil); err != nil {
		t.Fatalf("declare exchange %s: %v", exchange, err)
	}
	if deleteExchange {
		// On a channel of its own: a test may have broken this one.
		t.Cleanup(func() { Channel(t).ExchangeDelete(exchange, false, false) })
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, key, exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	d, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Queue{Name: q.Name, Deliveries: d, Ch: ch}
}

// Next returns the next delivery, failing the test after timeout.
func (q *Queue) Next(t testing.TB, timeout time.Duration) amqp.Delivery {
	t.Helper()
	select {
	case d, ok := <-q.Deliveries:
		if !ok {
			t.Fatal("queue consumer closed")
		}
		return d
	case <-time.After(timeout):
		t.Fatalf("no message on %s within %v", q.Name, timeout)
	}
	return amqp.Delivery{}
}

// Quiet fails the test if a delivery arrives within d.
func (q *Queue) Quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case m := <-q.Deliveries:
		t.Fatalf("unexpected message: %s", m.Body)
	case <-time.After(d):
	}
}

// CheckQueue declares a fanout exchange and a named queue bound to it, for
// counting what reached the broker; args are the queue's arguments, and a
// queue without any is durable. Both are deleted at the test's end.
func CheckQueue(t testing.TB, args amqp.Table) (exchange, queue string) {
	t.Helper()
	exchange, queue = Name("test-ex"), Name("test-q")
	ch := Channel(t)
	if err := ch.ExchangeDeclare(exchange, "fanout", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Channel(t).ExchangeDelete(exchange, false, false) })
	BindQueue(t, exchange, queue, args)
	return exchange, queue
}

// BindQueue declares a named queue with args (durable without any), binds
// it to exchange and deletes it at the test's end.
func BindQueue(t testing.TB, exchange, queue string, args amqp.Table) {
	t.Helper()
	ch := Channel(t)
	if _, err := ch.QueueDeclare(queue, args == nil, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Channel(t).QueueDelete(queue, false, false, false) })
	if err := ch.QueueBind(queue, "", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
}

// Depth returns how many messages queue holds: a passive declare gives the
// true figure at once, where list_queues lags.
func Depth(t testing.TB, ch *amqp.Channel, queue string) int {
	t.Helper()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

// LiveHeap returns the bytes of live heap, after a collection.
func LiveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// WithHost returns rawURL with its host and port replaced by addr.
func WithHost(t testing.TB, rawURL, addr string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// FreeAddr returns a loopback address on which nothing listens.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Host returns the host:port of rawURL, with AMQP's default port.
func Host(t testing.TB, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "5672")
	}
	return u.Host
}

// Channel opens a channel on a connection of its own to the test broker,
// closed when the test ends.
func Channel(t testing.TB) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(URL(t))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// WaitFor polls cond until it holds, failing the test after timeout. It is
// for counters that have no signal of their own.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Buffer is a bytes.Buffer that clients may write from their own
// goroutines while a test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
