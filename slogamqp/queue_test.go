package slogamqp

import (
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
