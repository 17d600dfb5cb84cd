package sink

import (
	"strconv"
	"testing"
)

func TestTracker(t *testing.T) {
	const window = defaultWindow
	tr := newTracker()
	type step struct {
		id      string
		seq     uint64
		dup     bool
		gap     uint64
		missing uint64
	}
	for i, s := range []step{
		{"a", 5, false, 0, 0}, // a sink started late has missed nothing
		{"a", 6, false, 0, 0},
		{"a", 6, true, 0, 0},   // resent
		{"a", 10, false, 3, 3}, // 7, 8, 9 missed
		{"b", 1, false, 0, 3},
		{"a", 8, false, 0, 2}, // a late resend fills part of the gap
		{"a", 8, true, 0, 2},
		{"a", 5, true, 0, 2},
		{"a", 10 + 2*window, false, 2*window - 1, 2 + 2*window - 1}, // a long outage
		{"a", 11, false, 0, 2 + 2*window - 1},                       // too old to tell: written
		{"a", 10 + 2*window - 1, false, 0, 2 + 2*window - 2},
	} {
		dup, gap := tr.observe(s.id, s.seq, 0)
		if dup != s.dup || gap != s.gap || tr.missing != s.missing {
			t.Fatalf("step %d %+v: dup %v gap %d missing %d", i, s, dup, gap, tr.missing)
		}
	}
}

func TestTrackerForgetsOldestProducer(t *testing.T) {
	tr := newTracker()
	tr.observe("old", 1, 0)
	tr.observe("old", 5, 0) // 3 missing
	for i := range maxProducers {
		tr.observe(string(rune('A'+i%26))+strconv.Itoa(i), 1, 0)
	}
	if len(tr.producers) != maxProducers || tr.producers["old"] != nil || tr.missing != 0 {
		t.Errorf("%d producers, old kept: %v, missing %d", len(tr.producers), tr.producers["old"] != nil, tr.missing)
	}
}

// A short-lived producer, such as one run of emitlog, costs a few words of
// bitmap, not its whole window.
func TestTrackerGrowsWithTheSpan(t *testing.T) {
	tr := newTracker()
	for seq := uint64(1); seq <= 10; seq++ {
		tr.observe("short", seq, 1<<20)
	}
	if p := tr.producers["short"]; len(p.seen) != 1 {
		t.Errorf("10 records hold %d words of bitmap, want 1", len(p.seen))
	}
	for seq := uint64(11); seq <= 5000; seq++ {
		tr.observe("short", seq, 1<<20)
	}
	p := tr.producers["short"]
	if len(p.seen) > 128 {
		t.Errorf("5000 records hold %d words of bitmap, want at most 128", len(p.seen))
	}
	// What was seen before the bitmap grew is still known.
	for _, seq := range []uint64{1, 64, 65, 4999} {
		if dup, _ := tr.observe("short", seq, 1<<20); !dup {
			t.Errorf("seq %d not recognised as a duplicate after growing", seq)
		}
	}
}

// A producer whose buffer is larger than the default window says so in
// its window header, and a resend from that far back is still caught.
func TestTrackerHonoursTheProducersWindow(t *testing.T) {
	const producerWindow = 4 * defaultWindow
	tr := newTracker()
	for seq := uint64(1); seq <= 3*defaultWindow; seq++ {
		tr.observe("big", seq, producerWindow)
	}
	if dup, _ := tr.observe("big", 2, producerWindow); !dup {
		t.Error("a resend from 3 default windows back was taken as new")
	}
	// A hostile header cannot make the sink hold more than maxWindow.
	tr.observe("hostile", 1, 1<<62)
	tr.observe("hostile", 1<<40, 1<<62)
	if p := tr.producers["hostile"]; p.bits() > maxWindow {
		t.Errorf("bitmap of %d bits, above maxWindow", p.bits())
	}
}
