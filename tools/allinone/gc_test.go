package allinone

import "testing"

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
