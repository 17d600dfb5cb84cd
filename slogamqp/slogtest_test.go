package slogamqp

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"testing/slogtest"
)

// TestSlogtestInMemory runs the standard library's handler conformance
// tests on the bodies the handler buffers.
func TestSlogtestInMemory(t *testing.T) { runSlogtest(t, nil) }

// runSlogtest runs slogtest on offline handlers made with opts.
func runSlogtest(t *testing.T, opts *Options) {
	var h *Handler
	slogtest.Run(t, func(t *testing.T) slog.Handler {
		h = offline(t, opts)
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

type traceKey struct{}

// traceAttrs is a ContextAttrs as a tracing library's would be.
func traceAttrs(ctx context.Context) []slog.Attr {
	if id, ok := ctx.Value(traceKey{}).(string); ok {
		return []slog.Attr{slog.String("trace_id", id)}
	}
	return nil
}

// TestSlogtestWithContextAttrs: the conformance tests still pass with
// ContextAttrs adding an attribute to every record.
func TestSlogtestWithContextAttrs(t *testing.T) {
	runSlogtest(t, &Options{ContextAttrs: func(context.Context) []slog.Attr {
		return []slog.Attr{slog.String("trace_id", "4bf92f3577b34da6")}
	}})
}

// TestContextAttrs: the context's attributes are at the top level, after
// the message and before the logger's own, whatever its groups; ReplaceAttr
// sees them without groups.
func TestContextAttrs(t *testing.T) {
	var groups [][]string
	h := offline(t, &Options{ContextAttrs: traceAttrs, ReplaceAttr: func(g []string, a slog.Attr) slog.Attr {
		if a.Key == "trace_id" {
			groups = append(groups, g)
		}
		return a
	}})
	ctx := context.WithValue(context.Background(), traceKey{}, "4bf92f3577b34da6")
	l := slog.New(h).With("svc", "api").WithGroup("http")
	l.InfoContext(ctx, "served", "status", 200)
	l.Info("no trace")
	b := h.bodies()
	if len(b) != 2 {
		t.Fatalf("buffered %d records", len(b))
	}
	if want := `"msg":"served","trace_id":"4bf92f3577b34da6","svc":"api","http":{"status":200}}`; !strings.HasSuffix(b[0], want) {
		t.Errorf("body %s, want it to end %s", b[0], want)
	}
	if strings.Contains(b[1], "trace_id") {
		t.Errorf("a record without a trace got one: %s", b[1])
	}
	if len(groups) != 1 || len(groups[0]) != 0 {
		t.Errorf("ReplaceAttr saw trace_id in groups %q, want once with none", groups)
	}
}
