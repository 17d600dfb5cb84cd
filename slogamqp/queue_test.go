package slogamqp

import (
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// TestDropStretches: drops are told once a second has passed without one,
// each minute while they go on, and at once when the handler closes.
func TestDropStretches(t *testing.T) {
	q := newQueue(&Options{BufferRecords: 1, BufferBytes: 1 << 20})
	t0 := time.Now()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	q.drop(at(0))
	q.drop(at(500 * time.Millisecond))
	if n, ask := q.dropsToReport(at(900*time.Millisecond), false); n != 0 || !ask.Equal(at(1500*time.Millisecond)) {
		t.Fatalf("during the stretch: told %d, ask again at %v", n, ask.Sub(t0))
	}
	if n, _ := q.dropsToReport(at(1500*time.Millisecond), false); n != 2 {
		t.Fatalf("after a quiet second: told %d, want 2", n)
	}
	// A stretch that never pauses is told each minute.
	for d := time.Duration(0); d <= 61*time.Second; d += 500 * time.Millisecond {
		q.drop(at(2*time.Second + d))
	}
	if n, _ := q.dropsToReport(at(62*time.Second), false); n != 123 {
		t.Fatalf("a minute into a stretch: told %d, want 123", n)
	}
	q.drop(at(63 * time.Second))
	if n, _ := q.dropsToReport(at(63*time.Second), true); n != 1 {
		t.Fatalf("at Close: told %d, want 1", n)
	}
	if n, ask := q.dropsToReport(at(64*time.Second), true); n != 0 || !ask.IsZero() {
		t.Fatalf("nothing left: told %d, ask at %v", n, ask)
	}
}

// countingValuer counts its resolutions: how many records were encoded.
type countingValuer struct{ n *atomic.Int64 }

func (c countingValuer) LogValue() slog.Value { c.n.Add(1); return slog.StringValue("v") }

// TestDropNewestSkipsEncoding: with the buffer full, DropNewest drops a
// record before encoding it, so dropping costs less than logging; with a
// Fallback, which needs the encoding, it still encodes.
func TestDropNewestSkipsEncoding(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     Options
		encoded  int64
		fallback bool
	}{
		{"DropNewest", Options{BufferRecords: 1}, 1, false},
		{"with a Fallback", Options{BufferRecords: 1, Fallback: slog.NewJSONHandler(io.Discard, nil)}, 5, true},
		{"DropOldest", Options{BufferRecords: 1, Overflow: DropOldest}, 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int64
			h := offline(t, &tc.opts)
			for range 5 {
				slog.New(h).Info("r", "v", countingValuer{&n})
			}
			if st := h.Stats(); n.Load() != tc.encoded || st.Handled != 5 || st.Dropped != 4 {
				t.Errorf("encoded %d times, stats %+v; want %d encodings, 5 handled, 4 dropped", n.Load(), st, tc.encoded)
			}
		})
	}
}
