package allinone

import (
	"runtime/debug"
	"testing"
)

// TestGCPercentFollowsTheLiveHeap: the collector's target goes to Go's
// default when the live heap grows past heavyLiveHeap, back when it falls
// below lightLiveHeap, and stays between them, whatever it was.
func TestGCPercentFollowsTheLiveHeap(t *testing.T) {
	for _, tt := range []struct {
		current int
		live    uint64
		want    int
	}{
		{lightGCPercent, 60 << 20, lightGCPercent},
		{lightGCPercent, 112 << 20, lightGCPercent},
		{lightGCPercent, 300 << 20, heavyGCPercent},
		{heavyGCPercent, 300 << 20, heavyGCPercent},
		{heavyGCPercent, 112 << 20, heavyGCPercent},
		{heavyGCPercent, 60 << 20, lightGCPercent},
	} {
		if got := gcPercentFor(tt.current, tt.live); got != tt.want {
			t.Errorf("gcPercentFor(%d, %d MB) = %d, want %d", tt.current, tt.live>>20, got, tt.want)
		}
	}
}

// TestGCTuningIsTheProcesses: instances of one process share one tuner, and
// the collector's target is restored only when the last of them stops.
func TestGCTuningIsTheProcesses(t *testing.T) {
	t.Setenv("GOGC", "")
	before := debug.SetGCPercent(77)
	defer debug.SetGCPercent(before)
	first, second := tuneGC(), tuneGC()
	if got := debug.SetGCPercent(lightGCPercent); got != lightGCPercent {
		t.Errorf("while tuning the target is %d, want %d", got, lightGCPercent)
	}
	first()
	first() // leaving twice counts once
	if got := debug.SetGCPercent(lightGCPercent); got != lightGCPercent {
		t.Errorf("with one instance left the target is %d, want still %d", got, lightGCPercent)
	}
	second()
	if got := debug.SetGCPercent(77); got != 77 {
		t.Errorf("after the last instance stopped the target is %d, want the 77 it found", got)
	}
}
