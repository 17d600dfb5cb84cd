package main

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/logfan/logfan/internal/brokertest"
)

// TestTopicRouting is the RabbitMQ routing tutorials from the command
// line: on a topic exchange, a sink bound to "error" gets the errors, one
// bound to "#" gets everything, and emitlog routes by level unless told a
// key.
func TestTopicRouting(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-topic")
	dir := t.TempDir()
	errorsOnly, all := filepath.Join(dir, "errors.log"), filepath.Join(dir, "all.log")
	common := []string{"-url", url, "-exchange", ex, "-exchange-type", "topic", "-durable-exchange"}
	errSink, errOut, _ := startLogsink(t, append(common, "-bind", "error", "-bind", "audit.*", "-file", errorsOnly)...)
	allSink, allOut, _ := startLogsink(t, append(common, "-bind", "#", "-file", all)...)

	for _, args := range [][]string{
		{"-level", "error", "disk failed"},
		{"-level", "info", "request served"},
		{"-level", "warn", "disk slow"},
		{"-routing-key", "audit.login", "user logged in"},
	} {
		cmd := exec.Command(binary(t, "emitlog"), append(common, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("emitlog %q: %v\n%s", args, err, out)
		}
	}
	lines := func(path string) int {
		b, _ := os.ReadFile(path)
		return strings.Count(string(b), "\n")
	}
	brokertest.WaitFor(t, wait, "the records", func() bool { return lines(errorsOnly) >= 2 && lines(all) >= 4 })
	for _, s := range []*exec.Cmd{errSink, allSink} {
		s.Process.Signal(syscall.SIGTERM)
		s.Wait()
	}
	if got := slices.Sorted(maps.Keys(recordsOnce(t, errorsOnly))); !slices.Equal(got, []string{"disk failed", "user logged in"}) {
		t.Errorf("the sink bound to error and audit.* wrote %q\n%s", got, errOut)
	}
	if got := recordsOnce(t, all); len(got) != 4 {
		t.Errorf("the sink bound to # wrote %v\n%s", got, allOut)
	}
}

// TestColorFlag: -color always colours the level even on a pipe, and
// -color never leaves it plain.
func TestColorFlag(t *testing.T) {
	url := brokertest.URL(t)
	for mode, want := range map[string]bool{"always": true, "never": false} {
		ex := brokertest.Name("test-color")
		cmd, _, stdout := startLogsink(t, "-url", url, "-exchange", ex, "-stdout", "-color", mode)
		emit(t, url, ex, "coloured?")
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if got := strings.Contains(stdout.String(), "\x1b["); got != want || !strings.Contains(stdout.String(), "coloured?") {
			t.Errorf("-color %s: %q", mode, stdout.String())
		}
	}
}
