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
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetGCPercent(77)
	defer debug.SetGCPercent(before)
	beforeLimit := debug.SetMemoryLimit(3 << 30)
	defer debug.SetMemoryLimit(beforeLimit)
	first, second := tuneGC(), tuneGC()
	if got := debug.SetGCPercent(lightGCPercent); got != lightGCPercent {
		t.Errorf("while tuning the target is %d, want %d", got, lightGCPercent)
	}
	if got := debug.SetMemoryLimit(-1); got < softMemoryLimit || got >= 3<<30 {
		t.Errorf("while tuning the memory limit is %d MB, want at least %d MB, the soft limit", got>>20, softMemoryLimit>>20)
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
	if got := debug.SetMemoryLimit(-1); got != 3<<30 {
		t.Errorf("after the last instance stopped the memory limit is %d MB, want the 3072 MB it found", got>>20)
	}
}

// TestMemoryLimitLeavesRoomForTheLiveHeap: the soft limit holds while the
// live heap is small, and is the live heap and a quarter once that is more,
// so the collector never runs without pause on a heap the limit cannot hold.
func TestMemoryLimitLeavesRoomForTheLiveHeap(t *testing.T) {
	for _, tt := range []struct {
		live uint64
		want int64
	}{
		{0, softMemoryLimit},
		{60 << 20, softMemoryLimit},
		{softMemoryLimit * 4 / 5, softMemoryLimit},
		{480 << 20, 600 << 20},
		{4 << 30, 5 << 30},
		{1 << 63, 5 << 59},
	} {
		if got := memoryLimitFor(tt.live); got != tt.want {
			t.Errorf("memoryLimitFor(%d MB) = %d MB, want %d MB", tt.live>>20, got>>20, tt.want>>20)
		}
	}
}

// TestGOMEMLIMITReplacesTheSoftLimit: a limit set in the environment stands.
func TestGOMEMLIMITReplacesTheSoftLimit(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "3GiB")
	beforeLimit := debug.SetMemoryLimit(3 << 30)
	defer debug.SetMemoryLimit(beforeLimit)
	leave := tuneGC()
	defer leave()
	if got := debug.SetMemoryLimit(-1); got != 3<<30 {
		t.Errorf("with GOMEMLIMIT set the memory limit is %d MB, want its 3072 MB", got>>20)
	}
}
