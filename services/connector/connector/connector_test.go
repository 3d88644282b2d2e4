package connector_test

import (
	"context"
	"testing"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/services/connector/connector"
)

// TestTargetsOfRemovedFlowsAreClosed: once no flow writes to a target, the
// connector closes it (at its next use of any target) instead of keeping its
// connections open until a restart.
func TestTargetsOfRemovedFlowsAreClosed(t *testing.T) {
	r := newRig(t, bus.DefaultConfig())
	r.addFlow("a")
	r.addFlow("b")
	r.start(connector.BreakerConfig{})
	pushed := func(name string) int {
		applied, _ := r.target(name).state()
		return len(applied)
	}

	r.push("a", "k1", 1)
	waitFor(t, "flow a's record never reached its target", func() bool { return pushed("a") == 1 })
	if err := r.kv.Delete(context.Background(), flowconfig.Key("acme", "a")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the watcher never saw flow a go", func() bool { return r.flows.Get("acme", "a") == nil })
	r.push("b", "k2", 1)
	waitFor(t, "flow b's record never reached its target", func() bool { return pushed("b") == 1 })
	if !r.target("a").isClosed() {
		t.Error("target a, which no flow uses any more, is still open")
	}
	if r.target("b").isClosed() {
		t.Error("target b, which flow b uses, was closed")
	}
}
