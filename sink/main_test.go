package sink

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logfan/logfan/internal/brokertest"
)

func TestMain(m *testing.M) {
	brokertest.Main(m, nil)
}

const wait = 20 * time.Second // generous: only a failure waits this long

// diag collects a sink's diagnostics and signals each (re)connection.
type diag struct {
	t         testing.TB
	mu        sync.Mutex
	text      strings.Builder
	connected chan struct{}
}

func newDiag(t testing.TB) *diag { return &diag{t: t, connected: make(chan struct{}, 100)} }

func (d *diag) Write(p []byte) (int, error) {
	d.mu.Lock()
	d.text.Write(p)
	d.mu.Unlock()
	d.t.Logf("diag: %s", strings.TrimSpace(string(p)))
	if strings.Contains(string(p), "connected") {
		d.connected <- struct{}{}
	}
	return len(p), nil
}

func (d *diag) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.text.String()
}

// waitConnected waits for the sink's next (re)connection.
func (d *diag) waitConnected() {
	d.t.Helper()
	select {
	case <-d.connected:
	case <-time.After(wait):
		d.t.Fatal("sink did not connect")
	}
}

// memOutput keeps what it is given.
type memOutput struct {
	mu      sync.Mutex
	pending []Record
	records []Record
}

func (m *memOutput) Write(r *Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending = append(m.pending, *r)
	return nil
}

func (m *memOutput) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.records = append(m.records, m.pending...)
	m.pending = nil
	return nil
}

func (m *memOutput) Reopen() error { return nil }
func (m *memOutput) Close() error  { return m.Flush() }

func (m *memOutput) all() []Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Record(nil), m.records...)
}

// start runs a sink until the test ends (or stop is called) and waits for
// its first connection.
func start(t *testing.T, opts Options) (s *Sink, d *diag, stop func() error) {
	t.Helper()
	d = newDiag(t)
	opts.Diag = d
	if opts.MaxBackoff == 0 {
		opts.MinBackoff, opts.MaxBackoff = 10*time.Millisecond, 100*time.Millisecond
	}
	s, err := New(&opts)
	if err != nil {
		t.Fatal(err)
	}
	stop = runSink(t, s)
	d.waitConnected()
	return s, d, stop
}

// runSink runs s until the test ends or stop is called, which returns
// Run's error.
func runSink(t *testing.T, s *Sink) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(wait):
				t.Fatal("sink did not stop")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	brokertest.WaitFor(t, wait, what, cond)
}
