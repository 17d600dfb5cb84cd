package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/logfan/logfan/internal/amqpconn"
	"github.com/logfan/logfan/internal/brokertest"
	"github.com/logfan/logfan/sink"
	"github.com/logfan/logfan/slogamqp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const nodes = 3

// cluster is the one cluster.sh started in dir.
type cluster struct {
	dir     string
	mu      sync.Mutex
	stopped map[int]bool
}

// open returns the cluster named by LOGFAN_CLUSTER, or skips the test.
// Every node must answer: a cluster left degraded fails the next test.
func open(t *testing.T) *cluster {
	t.Helper()
	dir := os.Getenv("LOGFAN_CLUSTER")
	if dir == "" {
		t.Skip("no cluster: start one with internal/cluster/cluster.sh start DIR and set LOGFAN_CLUSTER=DIR")
	}
	c := &cluster{dir: dir, stopped: map[int]bool{}}
	for n := 1; n <= nodes; n++ {
		conn, err := amqp.Dial(c.url(n))
		if err != nil {
			t.Fatalf("node %d of the cluster in %s: %v", n, dir, amqpconn.RedactError(err, c.url(n)))
		}
		conn.Close()
	}
	t.Cleanup(func() {
		for n := 1; n <= nodes; n++ {
			if c.isStopped(n) {
				c.start(t, n)
			}
		}
	})
	return c
}

func (c *cluster) url(n int) string {
	return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/logfan-test", 5680+n)
}

// urls are the nodes' URLs, but those of skip.
func (c *cluster) urls(skip ...int) []string {
	var us []string
	for n := 1; n <= nodes; n++ {
		if !slices.Contains(skip, n) {
			us = append(us, c.url(n))
		}
	}
	return us
}

// node is the node a redacted broker URL names, or 0.
func node(broker string) int {
	u, err := url.Parse(broker)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(u.Port())
	if p < 5681 || p > 5680+nodes {
		return 0
	}
	return p - 5680
}

func (c *cluster) script(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"cluster.sh"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (c *cluster) ctl(t *testing.T, n int, args ...string) {
	t.Helper()
	c.script(t, append([]string{"ctl", c.dir, strconv.Itoa(n), "-q"}, args...)...)
}

// stop stops node n's RabbitMQ application, as an operator does before
// an upgrade: its clients lose their connections.
func (c *cluster) stop(t *testing.T, n int) {
	t.Helper()
	c.mu.Lock()
	c.stopped[n] = true
	c.mu.Unlock()
	c.ctl(t, n, "stop_app")
}

// start starts node n again and waits until it runs.
func (c *cluster) start(t *testing.T, n int) {
	t.Helper()
	c.ctl(t, n, "start_app")
	c.ctl(t, n, "await_startup", "--timeout", "120")
	c.mu.Lock()
	delete(c.stopped, n)
	c.mu.Unlock()
}

func (c *cluster) isStopped(n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped[n]
}

// awaitNotCritical waits until stopping node n leaves every quorum queue
// a majority: what an operator checks before stopping the next node of a
// rolling restart.
func (c *cluster) awaitNotCritical(t *testing.T, n int) {
	t.Helper()
	args := []string{"queues", c.dir, strconv.Itoa(n), "-q", "check_if_node_is_quorum_critical"}
	waitFor(t, fmt.Sprintf("node %d not to be quorum-critical", n), func() bool {
		return exec.Command("bash", append([]string{"cluster.sh"}, args...)...).Run() == nil
	})
}

// deleteQueue deletes a test's quorum queue through a running node.
func (c *cluster) deleteQueue(t *testing.T, q string) {
	t.Cleanup(func() {
		for n := 1; n <= nodes; n++ {
			conn, err := amqp.Dial(c.url(n))
			if err != nil {
				continue
			}
			defer conn.Close()
			if ch, err := conn.Channel(); err == nil {
				ch.QueueDelete(q, false, false, false)
			}
			return
		}
	})
}

// waitFor waits generously: a node stopping or starting takes seconds on
// a loaded machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	brokertest.WaitFor(t, 2*time.Minute, what, cond)
}

var seq int

func name(prefix string) string {
	seq++
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq)
}

// newHandler is a handler publishing with confirms to urls, reconnecting
// quickly: what a service on a cluster runs.
func newHandler(t *testing.T, ex string, urls []string) *slogamqp.Handler {
	t.Helper()
	h, err := slogamqp.New(&slogamqp.Options{
		URLs: urls, Exchange: ex, Durable: true, ConnectionName: "cluster-test",
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 2 * time.Second,
		OnError: func(error, time.Duration) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the handler to connect", func() bool { return h.Stats().Connected })
	return h
}

// closeHandler closes h and checks it gave up nothing.
func closeHandler(t *testing.T, h *slogamqp.Handler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if st := h.Stats(); st.Dropped != 0 || st.Undelivered != 0 || st.Confirmed < st.Handled {
		t.Fatalf("handler stats %+v: want every record confirmed", st)
	}
}

// fileSink is a sink on the quorum queue q, writing to a file.
type fileSink struct {
	*sink.Sink
	path string
	diag *brokertest.Buffer
	stop func()
}

func newSink(t *testing.T, ex, q string, urls []string) *fileSink {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.log")
	f, err := sink.NewFile(sink.FileOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	d := &brokertest.Buffer{}
	s, err := sink.New(&sink.Options{
		URLs: urls, Exchange: ex, Durable: true, Queue: q, Outputs: []sink.Output{f}, Diag: d,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	fs := &fileSink{Sink: s, path: path, diag: d, stop: func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("sink: %v", err)
			}
		})
	}}
	t.Cleanup(fs.stop)
	waitFor(t, "the sink to bind its queue", func() bool { return s.Stats().Broker != "" })
	return fs
}

// records reads the sink's file: how many times each record's "i" is
// there, checking that every line is a whole record.
func (s *fileSink) records(t *testing.T) map[int]int {
	t.Helper()
	f, err := os.Open(s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[int]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct {
			I *int `json:"i"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.I == nil {
			t.Fatalf("line %q: not a whole record (%v)", sc.Text(), err)
		}
		seen[*r.I]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return seen
}

// outcome is a row of the README's table.
type outcome struct {
	records, lost, twice int
	duplicates           uint64
	failover             []time.Duration
}

// check waits until the sink has written all n records, stops it and
// reads its file: every record exactly once.
func (s *fileSink) check(t *testing.T, n int) outcome {
	t.Helper()
	waitFor(t, fmt.Sprintf("the sink to write %d records", n), func() bool { return s.Stats().Written >= uint64(n) })
	s.stop()
	seen := s.records(t)
	o := outcome{records: n, duplicates: s.Stats().Duplicates}
	for i := range n {
		switch c := seen[i]; {
		case c == 0:
			o.lost++
		case c > 1:
			o.twice++
		}
	}
	if o.lost != 0 || o.twice != 0 || len(seen) != n {
		t.Errorf("%d of %d records lost, %d written twice, %d in the file; sink diagnostics:\n%s", o.lost, n, o.twice, len(seen), s.diag)
	}
	return o
}

func (o outcome) log(t *testing.T, fault string) {
	var fs []string
	for _, d := range o.failover {
		fs = append(fs, d.Round(10*time.Millisecond).String())
	}
	t.Logf("| %s | %d | %d | %d | %s |", fault, o.records, o.lost, o.duplicates, strings.Join(fs, ", "))
}

// publish logs records numbered by "i" at a steady pace, until n are
// logged or stop is closed, telling at of each record it is about to log;
// it returns how many it logged.
func publish(h *slogamqp.Handler, n int, stop <-chan struct{}, at func(i int)) int {
	l := slog.New(h)
	for i := range n {
		select {
		case <-stop:
			return i
		default:
		}
		if at != nil {
			at(i)
		}
		l.Info("cluster record", "i", i)
		if i%10 == 9 {
			time.Sleep(5 * time.Millisecond) // a service's pace, not a flood
		}
	}
	return n
}

// watchFailover measures a client's failover from node from: the time
// from losing its connection there to being connected to another node.
// The wait it returns gives -1 if that did not happen in two minutes.
func watchFailover(from int, broker func() string) (wait func() time.Duration) {
	got := make(chan time.Duration, 1)
	go func() {
		var lost time.Time
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			b := broker()
			switch {
			case lost.IsZero() && node(b) != from:
				lost = time.Now()
			case !lost.IsZero() && b != "" && node(b) != from:
				got <- time.Since(lost)
				return
			}
		}
		got <- -1
	}()
	return func() time.Duration { return <-got }
}
