package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit checks the README's unit with systemd-analyze verify,
// pointing it at the binary just built: every key known, every value
// parsed, the command executable.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze on this machine: the README's unit is not checked")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "### Running it as a service")
	_, rest, ok2 := strings.Cut(rest, "```ini\n")
	unit, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 || !strings.Contains(unit, "ExecStart=/usr/local/bin/logsink ") {
		t.Fatal("README: no unit with ExecStart=/usr/local/bin/logsink under Running it as a service")
	}
	unit = strings.ReplaceAll(unit, "/usr/local/bin/logsink", binary(t, "logsink"))
	path := filepath.Join(t.TempDir(), "logsink.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestVersion: -version prints one line, the command's name, version and
// Go release, and exits 0, for both binaries.
func TestVersion(t *testing.T) {
	for _, name := range []string{"logsink", "emitlog"} {
		out, err := exec.Command(binary(t, name), "-version").CombinedOutput()
		line := strings.TrimSuffix(string(out), "\n")
		if err != nil || strings.Contains(line, "\n") || !strings.HasPrefix(line, name+" ") || !strings.Contains(line, " go1.") {
			t.Errorf("%s -version: %q, %v", name, out, err)
		}
	}
}
