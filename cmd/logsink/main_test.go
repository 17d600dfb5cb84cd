package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logfan/logfan/internal/brokertest"
)

func TestMain(m *testing.M) {
	brokertest.Main(m, func() {
		if binDir != "" {
			os.RemoveAll(binDir)
		}
	})
}

const wait = 20 * time.Second

// watcher is an io.Writer that keeps everything and signals each line
// that contains a watched word.
type watcher struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	word  string
	lines chan string
}

func newWatcher(word string) *watcher { return &watcher{word: word, lines: make(chan string, 100)} }

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for _, l := range strings.Split(string(p), "\n") {
		if strings.Contains(l, w.word) {
			w.lines <- l
		}
	}
	return len(p), nil
}

// watch makes later lines with word signal instead.
func (w *watcher) watch(word string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.word = word
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (w *watcher) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-w.lines:
		return l
	case <-time.After(wait):
		t.Fatalf("no line with %q in:\n%s", w.word, w.String())
	}
	return ""
}

func TestBadUsageExitsTwoWithOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"-bogus"}, {"-format", "xml"}, {"-level", "loud"}, {"-max-size", "-1"}, {"-rotate-every", "10ms"}, {"extra"},
		{"-url", "amqp://u:s3cret@h:bad/"}, {"-file", "/proc/nope/app.log"}, {"-file-mode", "rw"}, {"-file-mode", "01777"},
		{"-single-active"}, {"-queue", "q", "-stream", "s"}, {"-stream", "s", "-from", "yesterday"},
		{"-stream", "s", "-retention", "0d"}, {"-queue", "q", "-queue-max-bytes", "0"},
		{"-url", "amqp://u:s3cret@a/,amqp://u:s3cret@b:bad/"}, {"-url", "amqps://u:s3cret@a/,,amqp://u:s3cret@b/"},
		{"-url-file", "/nonexistent/amqp-url"}, {"-metrics", "nope"}, {"-version", "-bogus"}, {"-color", "sometimes"},
	} {
		var stderr bytes.Buffer
		err := Run(context.Background(), args, io.Discard, &stderr, nil)
		var out bytes.Buffer
		if code := exitCode(err, &out); code != 2 {
			t.Errorf("%q: exit %d (%v), want 2", args, code, err)
		}
		if stderr.Len() != 0 || strings.Count(out.String(), "\n") != 1 || strings.Contains(out.String(), "s3cret") {
			t.Errorf("%q: printed %q then %q, want one line without the password", args, stderr.String(), out.String())
		}
	}
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	err := Run(context.Background(), []string{"-h"}, io.Discard, &stderr, nil)
	if !errors.Is(err, flag.ErrHelp) || exitCode(err, io.Discard) != 0 {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"Usage: logsink", "-file", "-max-size", "-max-backups", "-max-age", "-compress", "-file-mode", "-stdout", "-stderr", "-format", "-level", "-prefetch", "guest:***@"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("-h output lacks %q", want)
		}
	}
}

// TestSignals runs logsink in-process: SIGUSR1 prints statistics, SIGHUP
// reopens the file, SIGTERM stops it cleanly with the statistics.
func TestSignals(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-signals")
	path := filepath.Join(t.TempDir(), "app.log")
	stderr := newWatcher("msg=")
	signals := make(chan os.Signal)
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), []string{"-url", url, "-exchange", ex, "-file", path}, io.Discard, stderr, signals)
	}()
	if l := stderr.next(t); !strings.Contains(l, "msg=connected broker=amqp://guest:***@") {
		t.Fatalf("first line %q", l)
	}
	emit(t, url, ex, "first record")
	// SIGUSR1 prints the counters: ask until the record is written.
	for written := false; !written; {
		signals <- syscall.SIGUSR1
		l := stderr.next(t)
		for !strings.Contains(l, "received=") {
			l = stderr.next(t)
		}
		written = strings.Contains(l, "written=1 ")
	}
	if err := os.Rename(path, path+".1"); err != nil { // as logrotate does
		t.Fatal(err)
	}
	signals <- syscall.SIGHUP
	emit(t, url, ex, "second record")
	signals <- syscall.SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("no exit after SIGTERM")
	}
	if !strings.Contains(stderr.String(), "msg=stopped received=2 written=2") || !strings.Contains(stderr.String(), "msg=reopened file="+path) {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	for file, want := range map[string]string{path + ".1": "first record", path: "second record"} {
		b, err := os.ReadFile(file)
		if err != nil || !strings.Contains(string(b), want) || strings.Count(string(b), "\n") != 1 {
			t.Errorf("%s: %q (%v), want one record %q", file, b, err, want)
		}
	}
}

// emit publishes one record with the emitlog binary's code path, waiting
// for the broker's confirm.
func emit(t *testing.T, url, exchange, msg string) {
	t.Helper()
	cmd := exec.Command(binary(t, "emitlog"), "-url", url, "-exchange", exchange, msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("emitlog: %v\n%s", err, out)
	}
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binary builds the commands once per test run.
func binary(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "logfan-bin")
		if buildErr == nil {
			var out []byte
			out, buildErr = exec.Command("go", "build", "-o", binDir, "../../cmd/emitlog", "../../cmd/logsink").CombinedOutput()
			if buildErr != nil {
				buildErr = errors.New(string(out))
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v", buildErr)
	}
	return filepath.Join(binDir, name)
}

func startLogsink(t *testing.T, args ...string) (*exec.Cmd, *watcher, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(binary(t, "logsink"), args...)
	stderr := newWatcher("connected")
	var stdout bytes.Buffer
	cmd.Stderr, cmd.Stdout = stderr, &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	stderr.next(t)
	return cmd, stderr, &stdout
}

// TestPipeIntoLogsink is the quick start: emitlog reads lines from a pipe,
// a running logsink shows them on standard output and writes them to a
// file, and SIGTERM stops it with nothing lost.
func TestPipeIntoLogsink(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-pipe")
	path := filepath.Join(t.TempDir(), "logs", "app.log")
	sink, stderr, stdout := startLogsink(t, "-url", url, "-exchange", ex, "-file", path, "-file-mode", "0600", "-stdout")

	const n = 500
	var in strings.Builder
	for i := range n {
		in.WriteString("line " + strconv.Itoa(i) + "\n")
	}
	emitter := exec.Command(binary(t, "emitlog"), "-url", url, "-exchange", ex, "-level", "warn")
	emitter.Stdin = strings.NewReader(in.String())
	if out, err := emitter.CombinedOutput(); err != nil {
		t.Fatalf("emitlog: %v\n%s", err, out)
	}
	// emitlog returned after the broker confirmed every record, which the
	// broker had then queued for the sink: SIGTERM must not lose them.
	sink.Process.Signal(syscall.SIGTERM)
	if err := sink.Wait(); err != nil {
		t.Fatalf("logsink: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "written="+strconv.Itoa(n)) {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want -file-mode 0600", fi.Mode().Perm())
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	screen := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != n || len(screen) != n {
		t.Fatalf("file has %d lines, screen %d, want %d", len(lines), len(screen), n)
	}
	for i := range n {
		want := "line " + strconv.Itoa(i)
		if !strings.Contains(lines[i], `"level":"WARN","msg":"`+want+`"`) || !strings.HasSuffix(screen[i], "WARN  "+want) {
			t.Fatalf("record %d: file %s, screen %s", i, lines[i], screen[i])
		}
	}
}

// TestSecondSignalExitsAtOnce stalls the sink's connection, so that the
// graceful stop cannot finish; a second SIGINT ends it anyway.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	url := brokertest.URL(t)
	p := brokertest.NewProxy(t, brokertest.Host(t, url))
	sink, stderr, _ := startLogsink(t, "-url", brokertest.WithHost(t, url, p.Addr()), "-exchange", brokertest.Name("test-twice"))
	p.Stall()
	stderr.watch("stopping")
	sink.Process.Signal(syscall.SIGINT)
	stderr.next(t) // signals do not queue: wait until the first is taken
	sink.Process.Signal(syscall.SIGINT)
	exited := make(chan error, 1)
	go func() { exited <- sink.Wait() }()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "aborted") {
			t.Errorf("exit %v, stderr:\n%s", err, stderr.String())
		}
	case <-time.After(wait):
		t.Fatal("logsink did not exit after a second signal")
	}
}

// TestPasswordNeverPrinted runs both binaries with a password the broker
// refuses, through the paths that print (refusals, statistics, stop,
// undelivered records, -h with AMQP_URL set), and looks for the password
// in everything they print.
func TestPasswordNeverPrinted(t *testing.T) {
	url := brokertest.URL(t)
	const password = "pw-9f3c1b-never-shown"
	bad := strings.Replace(brokertest.WithHost(t, url, brokertest.Host(t, url)), "://", "://logfan-nobody:"+password+"@", 1)
	var all bytes.Buffer

	down := "amqp://logfan-nobody:" + password + "@" + brokertest.FreeAddr(t) + "/"
	sink := exec.Command(binary(t, "logsink"), "-url", bad+","+down)
	stderr := newWatcher("wrong user name or password")
	sink.Stderr, sink.Stdout = stderr, &all
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	stderr.next(t) // refused, or found down, once
	sink.Process.Signal(syscall.SIGUSR1)
	sink.Process.Signal(syscall.SIGTERM)
	sink.Wait()
	all.WriteString(stderr.String())

	for _, args := range [][]string{{"-url", bad, "-timeout", "500ms", "hello"}, {"-h"}} {
		cmd := exec.Command(binary(t, "emitlog"), args...)
		cmd.Env = append(os.Environ(), "AMQP_URL="+bad+","+down)
		out, _ := cmd.CombinedOutput()
		all.Write(out)
	}
	cmd := exec.Command(binary(t, "logsink"), "-h")
	cmd.Env = append(os.Environ(), "AMQP_URL="+bad+","+down)
	out, _ := cmd.CombinedOutput()
	all.Write(out)

	if strings.Contains(all.String(), password) {
		t.Errorf("the password was printed:\n%s", all.String())
	}
	if !strings.Contains(all.String(), "logfan-nobody:***@") || !strings.Contains(all.String(), "wrong user name or password") {
		t.Errorf("expected the redacted URL and the cause in:\n%s", all.String())
	}
}
