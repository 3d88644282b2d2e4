package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPublishSaysWhatWasNotStored: syncline publish fails, with the reason,
// for a change that the ingest API does not store or that would go nowhere.
func TestPublishSaysWhatWasNotStored(t *testing.T) {
	c := newCLI(t)
	c.must("apply", "-f", example("orders.yaml"))
	order := []string{"publish", "--tenant", "acme", "--endpoint", "shop", "--entity", "order"}

	// The same event id twice: stored once, and the second time says so.
	id := "0193a5e0-0000-7000-8000-0000000c1001"
	c.must(append(order, "--key", "1001", "--event-id", id, "--file", example("order-1001.json"))...)
	out, err := c.run(append(order, "--key", "1002", "--event-id", id, "--file", example("order-1001.json"))...)
	if err == nil || !strings.Contains(err.Error(), `was not stored: tenant "acme" already published event id `+id) {
		t.Errorf("publishing event id %s again: %v\n%s, want it reported as not stored", id, err, out)
	}

	// A record in Latin-1, not UTF-8: refused, saying where.
	latin1 := filepath.Join(t.TempDir(), "order.json")
	if err := os.WriteFile(latin1, []byte("{\"number\":\"SO-1\",\n\"street\":\"Stra\xdfe 1\"}"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = c.run(append(order, "--key", "1003", "--file", latin1)...)
	if err == nil || !strings.Contains(err.Error(), "not valid UTF-8 at line 2, column 15 (byte 33)") {
		t.Errorf("publishing a Latin-1 record: %v\n%s, want it refused with the position", err, out)
	}

	// A tenant that does not exist, and an entity no flow reads: refused
	// with the reason, instead of "published" and lost.
	out, err = c.run("publish", "--tenant", "nobody", "--endpoint", "shop", "--entity", "order", "--key", "1", "--data", `{"n":1}`)
	if err == nil || !strings.Contains(err.Error(), `tenant "nobody" does not exist`) {
		t.Errorf("publishing to an unknown tenant: %v\n%s, want it refused", err, out)
	}
	out, err = c.run("publish", "--tenant", "acme", "--endpoint", "shop", "--entity", "invoice", "--key", "1", "--data", `{"n":1}`)
	if err == nil || !strings.Contains(err.Error(), `no flow of tenant "acme" reads entity "invoice" from endpoint "shop"`) || !strings.Contains(err.Error(), "its flows read order from shop") {
		t.Errorf("publishing an entity no flow reads: %v\n%s, want it refused naming what the flows read", err, out)
	}
}
