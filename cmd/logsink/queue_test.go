package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/logfan/logfan/internal/brokertest"
)

// TestKilledDurableSinkWritesEveryRecordOnce: a -queue or -stream file
// sink is killed with SIGKILL while 10,000 records are published, and
// started again: the file holds every record exactly once, on whole lines.
func TestKilledDurableSinkWritesEveryRecordOnce(t *testing.T) {
	for _, mode := range []string{"-queue", "-stream"} {
		t.Run(mode, func(t *testing.T) { testKilledSink(t, mode) })
	}
}

func testKilledSink(t *testing.T, mode string) {
	url := brokertest.URL(t)
	ex, queue := brokertest.Name("test-kill"), brokertest.Name("test-kill-q")
	t.Cleanup(func() { brokertest.Channel(t).QueueDelete(queue, false, false, false) })
	path := filepath.Join(t.TempDir(), "app.log")
	args := []string{"-url", url, "-exchange", ex, mode, queue, "-file", path}
	if mode == "-stream" {
		args = append(args, "-from", "first")
	}
	first, _, _ := startLogsink(t, args...)

	const n = 10000
	var in strings.Builder
	for i := range n {
		in.WriteString("record " + strconv.Itoa(i) + "\n")
	}
	emitter := exec.Command(binary(t, "emitlog"), "-url", url, "-exchange", ex)
	emitter.Stdin = strings.NewReader(in.String())
	var emitOut strings.Builder
	emitter.Stdout, emitter.Stderr = &emitOut, &emitOut
	if err := emitter.Start(); err != nil {
		t.Fatal(err)
	}
	lines := func() int {
		b, _ := os.ReadFile(path)
		return strings.Count(string(b), "\n")
	}
	brokertest.WaitFor(t, wait, "a third of the records written", func() bool { return lines() >= n/3 })
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	if err := emitter.Wait(); err != nil {
		t.Fatalf("emitlog: %v\n%s", err, emitOut.String())
	}
	second, stderr, _ := startLogsink(t, args...)
	brokertest.WaitFor(t, wait, "every record", func() bool { return lines() >= n })
	second.Process.Signal(syscall.SIGTERM)
	if err := second.Wait(); err != nil {
		t.Fatalf("logsink: %v\n%s", err, stderr.String())
	}
	seen := recordsOnce(t, path)
	if len(seen) != n {
		t.Errorf("%d distinct records in the file, want %d; second sink:\n%s", len(seen), n, stderr.String())
	}
}
