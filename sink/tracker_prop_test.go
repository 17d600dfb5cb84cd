package sink

import (
	"math/rand/v2"
	"testing"
)

// TestTrackerAgainstAMap: in-order streams with resends of recent seqs, as
// a publisher that reconnects sends them: every resend within the window
// is a duplicate, and nothing new is.
func TestTrackerAgainstAMap(t *testing.T) {
	for round := range 200 {
		r := rand.New(rand.NewPCG(uint64(round), 7))
		tr := newTracker()
		seen := map[uint64]bool{}
		next := uint64(1 + r.IntN(1000))
		window := uint64(64 << r.IntN(8))
		for step := 0; step < 5000; step++ {
			var seq uint64
			if r.IntN(10) == 0 && next > 1 {
				back := uint64(r.IntN(int(min(window, next-1)))) + 1
				seq = next - back
			} else {
				seq = next
				next += uint64(1 + r.IntN(3)/2) // sometimes a gap
			}
			dup, _ := tr.observe("p", seq, window)
			want := seen[seq]
			if dup != want {
				t.Fatalf("round %d step %d: seq %d (next %d, window %d): dup %v, want %v", round, step, seq, next, window, dup, want)
			}
			seen[seq] = true
		}
	}
}
