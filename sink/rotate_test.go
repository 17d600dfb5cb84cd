package sink

import (
	"slices"
	"testing"
	"time"
)

func TestClockMarks(t *testing.T) {
	for every, want := range map[time.Duration][]string{
		24 * time.Hour:   {"00:00"},
		12 * time.Hour:   {"00:00", "12:00"},
		6 * time.Hour:    {"00:00", "06:00", "12:00", "18:00"},
		7 * time.Hour:    nil,
		30 * time.Second: nil,
		0:                nil,
	} {
		if got := clockMarks(every); !slices.Equal(got, want) {
			t.Errorf("clockMarks(%v) = %q, want %q", every, got, want)
		}
	}
	if got := clockMarks(90 * time.Minute); len(got) != 16 || got[1] != "01:30" {
		t.Errorf("clockMarks(90m) = %q", got)
	}
	if got := clockMarks(time.Hour); len(got) != 24 || got[23] != "23:00" {
		t.Errorf("clockMarks(1h) = %q", got)
	}
}
