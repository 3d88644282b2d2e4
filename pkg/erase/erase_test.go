package erase_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/erase"
	"github.com/syncline/syncline/pkg/natstest"
)

func TestEveryServiceAnswersOnce(t *testing.T) {
	s := natstest.Run(t)
	nc, _ := natstest.Connect(t, s)
	var calls atomic.Int32
	// Two replicas of dedup: one answers each request.
	for range 2 {
		if err := erase.NewResponder(nc, "dedup", func(_ context.Context, tenant string) (map[string]int64, error) {
			calls.Add(1)
			if tenant != "acme" {
				t.Errorf("tenant %q", tenant)
			}
			return map[string]int64{"ledger entries": 3}, nil
		}).Start(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if err := erase.NewResponder(nc, "eventlog", func(context.Context, string) (map[string]int64, error) {
		return map[string]int64{"log records": 5}, nil
	}).Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	removed, err := erase.Tenant(ctx, nc, "acme", []string{"dedup", "eventlog"})
	if err != nil {
		t.Fatal(err)
	}
	if removed["ledger entries"] != 3 || removed["log records"] != 5 || calls.Load() != 1 {
		t.Fatalf("removed %v, dedup called %d times; want 3 ledger entries, 5 log records, one call", removed, calls.Load())
	}
}

func TestFailuresAndSilenceAreErrors(t *testing.T) {
	s := natstest.Run(t)
	nc, _ := natstest.Connect(t, s)
	if err := erase.NewResponder(nc, "dedup", func(context.Context, string) (map[string]int64, error) {
		return nil, errors.New("disk full")
	}).Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err := erase.Tenant(ctx, nc, "acme", []string{"dedup", "eventlog"})
	if err == nil || !strings.Contains(err.Error(), "dedup failed: disk full") || !strings.Contains(err.Error(), "eventlog did not answer") {
		t.Fatalf("err = %v; want both the failure and the silence named", err)
	}
}
