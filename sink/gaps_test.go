package sink

import (
	"strconv"
	"testing"
)

func TestTracker(t *testing.T) {
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
		dup, gap := tr.observe(s.id, s.seq)
		if dup != s.dup || gap != s.gap || tr.missing != s.missing {
			t.Fatalf("step %d %+v: dup %v gap %d missing %d", i, s, dup, gap, tr.missing)
		}
	}
}

func TestTrackerForgetsOldestProducer(t *testing.T) {
	tr := newTracker()
	tr.observe("old", 1)
	tr.observe("old", 5) // 3 missing
	for i := range maxProducers {
		tr.observe(string(rune('A'+i%26))+strconv.Itoa(i), 1)
	}
	if len(tr.producers) != maxProducers || tr.producers["old"] != nil || tr.missing != 0 {
		t.Errorf("%d producers, old kept: %v, missing %d", len(tr.producers), tr.producers["old"] != nil, tr.missing)
	}
}
