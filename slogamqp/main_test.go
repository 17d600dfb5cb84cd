package slogamqp

import (
	"context"
	"testing"
	"time"

	"github.com/logfan/logfan/internal/brokertest"
)

func TestMain(m *testing.M) {
	brokertest.Main(m, nil)
}

// offline returns a handler whose broker never answers, so that every
// record stays in its buffer, where bodies reads it: the in-memory publisher
// for tests of slog semantics.
func offline(t testing.TB, opts *Options) *Handler {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	o.URL = "amqp://guest:guest@" + brokertest.FreeAddr(t) + "/"
	o.OnError = func(error, time.Duration) {}
	h, err := New(&o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		h.Close(ctx)
	})
	return h
}

// bodies returns the bodies buffered so far, oldest first.
func (h *Handler) bodies() []string {
	q := h.s.q
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]string, q.pending.len())
	for i := range out {
		out[i] = string(*q.pending.at(i).body)
	}
	return out
}
