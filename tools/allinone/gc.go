package allinone

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// The all-in-one process's live heap is mostly the embedded NATS server's
// file-store block buffers (8 MB each, bytes the collector does not scan).
// Under steady traffic that is some 60 MB, and Go's default target (GOGC=100)
// lets the heap grow to twice it before collecting; collecting at one and a
// half times (GOGC=50) costs little there, as the traffic is light, and keeps
// the process under 150 MB at 1,000 events/s. In a burst, the live heap holds
// seconds of backlog and GOGC=50 would collect twice as often for the same
// work (measured: 2.0–2.7 s of GC against 0.9–1.0 s for 100,000 events), so
// the tuner goes back to Go's default once the live heap is large. GOGC in the
// environment turns it off.
//
// In a burst most of the heap's growth is the embedded server's block
// caches, which it holds weakly once they are written out: a collection
// frees them. A soft memory limit (softMemoryLimit) makes the collector run
// when the heap reaches it rather than at twice the live heap, which takes
// the burst's peak from 650–770 MB to about 440 MB at no CPU measurable on
// the reference machine (loadgen; at 300 MiB it costs a tenth more CPU per
// event). The limit is never under the live heap and a quarter, so a process
// whose live heap outgrows it collects as at GOGC=25 rather than without
// pause. GOMEMLIMIT in the environment turns this off.
const (
	lightGCPercent = 50
	heavyGCPercent = 100
	// heavyLiveHeap and lightLiveHeap bound the live heap for the switch,
	// apart, so that a heap near one bound does not flip it every second.
	heavyLiveHeap = 128 << 20
	lightLiveHeap = 96 << 20
	// softMemoryLimit is the memory limit while the live heap is under four
	// fifths of it.
	softMemoryLimit = 400 << 20
)

// memoryLimitFor is the soft memory limit for a live heap of live bytes.
func memoryLimitFor(live uint64) int64 {
	l := int64(min(live, 1<<61))
	return max(softMemoryLimit, l+l/4)
}

// gcPercentFor is the collector's target for a live heap of live bytes,
// given the current one.
func gcPercentFor(current int, live uint64) int {
	switch {
	case current != heavyGCPercent && live > heavyLiveHeap:
		return heavyGCPercent
	case current != lightGCPercent && live < lightLiveHeap:
		return lightGCPercent
	}
	return current
}

// gcTuning is the one tuner of the process: the collector's target is the
// process's, and a process may run more than one instance (tests do).
var gcTuning struct {
	mu    sync.Mutex
	users int
	stop  func()
}

// tuneGC starts tuning the collector's target, or joins the tuning an
// instance already started; the returned function leaves it, and the last
// to leave stops it and restores the target it found. Nothing is tuned when
// GOGC is set in the environment.
func tuneGC() (leave func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	gcTuning.mu.Lock()
	defer gcTuning.mu.Unlock()
	if gcTuning.users == 0 {
		gcTuning.stop = startGCTuner()
	}
	gcTuning.users++
	var once sync.Once
	return func() {
		once.Do(func() {
			gcTuning.mu.Lock()
			defer gcTuning.mu.Unlock()
			if gcTuning.users--; gcTuning.users == 0 {
				gcTuning.stop()
			}
		})
	}
}

// startGCTuner sets the collector's target by the live heap every second
// until the returned function is called, which restores the target it found.
func startGCTuner() (stop func()) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := lightGCPercent
	before := debug.SetGCPercent(current)
	limit := os.Getenv("GOMEMLIMIT") == ""
	beforeLimit := debug.SetMemoryLimit(-1)
	if limit {
		debug.SetMemoryLimit(softMemoryLimit)
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			metrics.Read(sample)
			if sample[0].Value.Kind() != metrics.KindUint64 {
				continue
			}
			live := sample[0].Value.Uint64()
			if next := gcPercentFor(current, live); next != current {
				debug.SetGCPercent(next)
				current = next
			}
			if limit {
				debug.SetMemoryLimit(memoryLimitFor(live))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		debug.SetGCPercent(before)
		debug.SetMemoryLimit(beforeLimit)
	}
}
