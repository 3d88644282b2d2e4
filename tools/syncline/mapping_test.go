package main

import (
	"strings"
	"testing"
)

func TestMappingDefaults(t *testing.T) {
	c := newCLI(t)
	out := c.must("mapping", "defaults", "order")
	for _, want := range []string{"# The default mapping of order; entities with one: ", "order_number: source.?number", "employee_number: 999999"} {
		if !strings.Contains(out, want) {
			t.Errorf("mapping defaults order printed\n%s\nwithout %q", out, want)
		}
	}
	out, err := c.run("mapping", "defaults", "spaceship")
	if err == nil || !strings.Contains(out+errString(err), `"spaceship" has no default mapping`) {
		t.Errorf("mapping defaults spaceship = %v\n%s", err, out)
	}
}
