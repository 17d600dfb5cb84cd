package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logfan/logfan/internal/brokertest"
)

// TestFileSizeLimitTearsNoLine runs logsink under a file size limit
// (ulimit -f), which makes a write stop halfway through a line. Once the
// limit is lifted, the file holds every record exactly once, each on a
// whole line.
func TestFileSizeLimitTearsNoLine(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("needs prlimit (util-linux)")
	}
	url := brokertest.URL(t)
	ex := brokertest.Name("test-fsize")
	path := filepath.Join(t.TempDir(), "app.log")
	cmd := exec.Command(prlimit, "--fsize=20000:unlimited", binary(t, "logsink"), "-url", url, "-exchange", ex, "-file", path)
	stderr := newWatcher("connected")
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	stderr.next(t)
	stderr.watch("write failed")

	const n = 2000 // about 100 KB: five times the limit
	var in strings.Builder
	for i := range n {
		in.WriteString("record " + strconv.Itoa(i) + " " + strings.Repeat("x", i%37) + "\n")
	}
	emitter := exec.Command(binary(t, "emitlog"), "-url", url, "-exchange", ex)
	emitter.Stdin = strings.NewReader(in.String())
	if out, err := emitter.CombinedOutput(); err != nil {
		t.Fatalf("emitlog: %v\n%s", err, out)
	}
	stderr.next(t)
	if out, err := exec.Command(prlimit, "--pid", strconv.Itoa(cmd.Process.Pid), "--fsize=unlimited:unlimited").CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v\n%s", err, out)
	}
	stderr.watch("stopped")
	brokertest.WaitFor(t, wait, "every record in the file", func() bool {
		b, _ := os.ReadFile(path)
		return strings.Count(string(b), "\n") >= n
	})
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("logsink: %v\n%s", err, stderr.String())
	}
	seen := recordsOnce(t, path)
	if len(seen) != n || !strings.Contains(stderr.String(), "written=2000") || !strings.Contains(stderr.String(), "torn=0") {
		t.Errorf("%d distinct records in the file, want %d; stderr:\n%s", len(seen), n, stderr.String())
	}
}

// recordsOnce reads a sink's file and returns the messages in it, failing
// the test on a line that is not a whole record or a record written twice.
func recordsOnce(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var m struct{ Msg string }
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is torn: %q", i, line)
		}
		if seen[m.Msg] {
			t.Fatalf("line %d: %q written twice", i, m.Msg)
		}
		seen[m.Msg] = true
	}
	return seen
}

// TestRotateEvery: with -rotate-every, a record written after the
// interval goes to a new file and the old one is kept beside it, each
// holding its records whole; -max-size 0 turns off rotation by size.
func TestRotateEvery(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-rotate")
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	cmd, stderr, _ := startLogsink(t, "-url", url, "-exchange", ex, "-file", path, "-max-size", "0", "-rotate-every", "1s")
	lines := func() int {
		b, _ := os.ReadFile(path)
		return strings.Count(string(b), "\n")
	}
	emit(t, url, ex, "before")
	brokertest.WaitFor(t, wait, "the first record", func() bool { return lines() == 1 })
	time.Sleep(1200 * time.Millisecond) // the interval under test must pass
	emit(t, url, ex, "after")
	brokertest.WaitFor(t, wait, "the second record", func() bool {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), "after")
	})
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	files, _ := filepath.Glob(filepath.Join(dir, "app*"))
	if len(files) != 2 {
		t.Fatalf("files %q, want app.log and one rotated file\n%s", files, stderr)
	}
	for _, f := range files {
		if got := recordsOnce(t, f); len(got) != 1 {
			t.Errorf("%s holds %v, want one record", f, got)
		}
	}
}
