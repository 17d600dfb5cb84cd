package sink

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/logfan/logfan/internal/brokertest"
)

// python returns a Python 3 that has pika, the client the RabbitMQ
// tutorial uses, skipping (failing under CI) when there is none.
func python(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import pika").Run() == nil {
			return py
		}
	}
	msg := "no python3 with pika (Debian: apt-get install python3-pika)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestTutorialEmitterToSink: the tutorial's emit_log.py publishes plain
// text to "logs"; the sink, bound to the same exchange, writes it as a
// record.
func TestTutorialEmitterToSink(t *testing.T) {
	py := python(t)
	url := brokertest.URL(t)
	out := &memOutput{}
	s, _, _ := start(t, Options{URL: url, Outputs: []Output{out}})
	word := brokertest.Name("tutorial")
	if b, err := exec.Command(py, "testdata/emit_log.py", url, word).CombinedOutput(); err != nil {
		t.Fatalf("emit_log.py: %v\n%s", err, b)
	}
	// Other tests may publish to "logs" too: look for ours.
	waitFor(t, "the tutorial's record", func() bool {
		for _, r := range out.all() {
			if r.Msg() == word {
				return true
			}
		}
		return false
	})
	if st := s.Stats(); st.Malformed != 0 {
		t.Errorf("plain text counted malformed: %v", st)
	}
}

// TestHandlerToTutorialReceiver: records from slogamqp reach the tutorial's
// receive_logs.py, which shares the "logs" exchange with it.
func TestHandlerToTutorialReceiver(t *testing.T) {
	py := python(t)
	url := brokertest.URL(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-u", "testdata/receive_logs.py", url)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	expect := func(what string) {
		t.Helper()
		timeout := time.After(wait)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("receive_logs.py ended before printing %q", what)
				}
				if strings.Contains(l, what) {
					return
				}
			case <-timeout:
				t.Fatalf("receive_logs.py did not print %q", what)
			}
		}
	}
	expect("Waiting for logs")
	h := newProducer(t, url, "")
	word := brokertest.Name("from-go")
	slog.New(h).Info(word)
	expect(`"msg":"` + word + `"`)
	cancel()
	for range lines {
	}
}
