package bus_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/natstest"
)

// TestLocksExcludeAcrossProcesses takes one lock from many goroutines of two processes (two
// connections, each with its Locks) and checks that no two ever hold it at once, that every
// one got it, and that another name is never held up by it.
func TestLocksExcludeAcrossProcesses(t *testing.T) {
	s := natstest.Run(t)
	_, js1 := natstest.Connect(t, s)
	_, js2 := natstest.Connect(t, s)
	procs := []*bus.Locks{bus.NewLocks(js1, 1), bus.NewLocks(js2, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var holders, maxHolders, done atomic.Int32
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			unlock, err := procs[g%2].Lock(ctx, "customer/acme/erp/email:jane@example.com")
			if err != nil {
				t.Errorf("goroutine %d: %v", g, err)
				return
			}
			n := holders.Add(1)
			for {
				m := maxHolders.Load()
				if n <= m || maxHolders.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
			holders.Add(-1)
			done.Add(1)
			unlock()
		})
	}
	// Another name is free meanwhile.
	unlock, err := procs[0].Lock(ctx, "customer/acme/erp/email:john@example.com")
	if err != nil {
		t.Fatalf("another name: %v", err)
	}
	unlock()
	wg.Wait()
	if got := maxHolders.Load(); got != 1 {
		t.Errorf("%d goroutines held the lock at once, want 1", got)
	}
	if got := done.Load(); got != 16 {
		t.Errorf("%d of 16 goroutines got the lock", got)
	}
}

// TestLockWaitEndsWithContext: a lock another process holds is waited for until the context
// ends, with an error that says so; once released, it is taken at once.
func TestLockWaitEndsWithContext(t *testing.T) {
	s := natstest.Run(t)
	_, js1 := natstest.Connect(t, s)
	_, js2 := natstest.Connect(t, s)
	a, b := bus.NewLocks(js1, 1), bus.NewLocks(js2, 1)
	ctx := context.Background()
	unlock, err := a.Lock(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	if _, err := b.Lock(short, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for a held lock: %v, want the context's deadline", err)
	}
	unlock()
	again, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	unlock2, err := b.Lock(again, "x")
	if err != nil {
		t.Fatalf("taking a released lock: %v", err)
	}
	unlock2()
}
