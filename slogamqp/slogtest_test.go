package slogamqp

import (
	"encoding/json"
	"log/slog"
	"testing"
	"testing/slogtest"
)

// TestSlogtestInMemory runs the standard library's handler conformance
// tests on the bodies the handler buffers.
func TestSlogtestInMemory(t *testing.T) {
	var h *Handler
	slogtest.Run(t, func(t *testing.T) slog.Handler {
		h = offline(t, nil)
		return h
	}, func(t *testing.T) map[string]any {
		b := h.bodies()
		if len(b) != 1 {
			t.Fatalf("buffered %d records, want 1", len(b))
		}
		return decode(t, b[0])
	})
}

func decode(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return m
}
