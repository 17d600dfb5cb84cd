package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logfan/logfan/internal/brokertest"
	"github.com/logfan/logfan/internal/cli"
)

// TestMain lets this test binary play the sink child that Run starts.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-sink-child" {
		os.Exit(cli.ExitCode("logbench", sinkChild(os.Args[2:]), os.Stderr))
	}
	brokertest.Main(m, nil)
}

// TestShortRun runs every scenario briefly: each prints a line, and no
// record goes unaccounted for.
func TestShortRun(t *testing.T) {
	url := brokertest.URL(t)
	emitlog := filepath.Join(t.TempDir(), "emitlog")
	if out, err := exec.Command("go", "build", "-o", emitlog, "../emitlog").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var out, errOut bytes.Buffer
	if err := Run(context.Background(), []string{"-url", url, "-duration", "300ms", "-emitlog", emitlog, "-lines", "3000"}, &out, &errOut); err != nil {
		t.Fatalf("Run: %v\n%s%s", err, out.String(), errOut.String())
	}
	for _, want := range []string{"(a) bare", "(a') bare", "(e) hand-written", "(e') hand-written", "(b) handler", "(c) handler", "(d) handler",
		"(q) -queue sink", "(s) -stream sink", "(p) emitlog -batch", "records/s", "(b) / (e)", "(c) / (e')", "(d) / (a)", "emitlog -batch / (a)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-duration", "0s"}, {"-size", "10"}, {"-nope"}, {"-url", "amqp://a/,amqp://b/"}, {"-url", "http://a/"}} {
		err := Run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
		if code := cli.ExitCode("logbench", err, &bytes.Buffer{}); code != 2 {
			t.Errorf("%q: exit %d (%v)", args, code, err)
		}
	}
}
