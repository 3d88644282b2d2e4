package allinone_test

import (
	"context"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/tools/allinone"
)

// TestPartitionsChosenAtStart: a new deployment that leaves the partition
// count open gets the machine's default; one that already runs with a count
// keeps it when it starts again without one, so no partition's events are
// left to a consumer that no longer runs.
func TestPartitionsChosenAtStart(t *testing.T) {
	run := func(dir string, partitions int) int {
		t.Helper()
		cfg := allinone.Config{DataDir: dir, NATSPort: -1, HTTPAddr: "127.0.0.1:0", AdminToken: "test-admin-token-0123456789"}
		if partitions > 0 {
			cfg.Bus = bus.DefaultConfig()
			cfg.Bus.Partitions = partitions
		}
		in, err := allinone.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := in.Start(ctx); err != nil {
			t.Fatalf("starting: %v", err)
		}
		if err := in.Stop(ctx); err != nil {
			t.Fatalf("stopping: %v", err)
		}
		return in.Partitions()
	}

	if got, want := run(t.TempDir(), 0), allinone.DefaultPartitions(); got != want {
		t.Errorf("new deployment: %d partitions, want the default %d", got, want)
	}
	dir := t.TempDir()
	// More than DefaultPartitions ever picks, so the test tells the two apart.
	if got := run(dir, 6); got != 6 {
		t.Fatalf("explicit count: %d partitions, want 6", got)
	}
	if got := run(dir, 0); got != 6 {
		t.Errorf("restart without a count: %d partitions, want the 6 the deployment runs with", got)
	}
}
