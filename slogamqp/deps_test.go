package slogamqp

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsStayFew: importing slogamqp pulls in amqp091 and backoff,
// never client_golang, which lives in slogprom for those who want it.
func TestImportsStayFew(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "prometheus") || strings.Contains(dep, "/sink") {
			t.Errorf("slogamqp depends on %s", dep)
		}
	}
}
