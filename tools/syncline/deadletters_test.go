package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDeadLettersCommands(t *testing.T) {
	c := newCLI(t)
	c.must("apply", "-f", example("orders.yaml"))
	// The example maps double(source.total): a total that is not a number fails the mapping.
	c.must("publish", "--tenant", "acme", "--endpoint", "shop", "--entity", "order", "--key", "2002",
		"--data", `{"number":"SO-2002","status":"paid","currency":"EUR","total":"lots","customer":{"email":"a@b.c","name":"A"},"lines":[]}`)
	var id string
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := c.stdout("deadletters", "list", "--tenant", "acme")
		if m := regexp.MustCompile(`(?m)^(dlq:\S+)\s.*2002\s+mapper\s+mapping_failed\s+open`).FindStringSubmatch(out); m != nil {
			id = m[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dead letter for order 2002:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out := c.stdout("deadletters", "show", id, "--tenant", "acme"); strings.Contains(out, "lots") {
		t.Errorf("show without --record printed the record:\n%s", out)
	}
	if out := c.stdout("deadletters", "show", id, "--tenant", "acme", "--record"); !strings.Contains(out, `\"total\":\"lots\"`) {
		t.Errorf("show --record printed\n%s\nwithout the record", out)
	}
	if out := c.must("deadletters", "edit", id, "--tenant", "acme", "--record",
		`{"number":"SO-2002","status":"paid","currency":"EUR","total":20.02,"customer":{"email":"a@b.c","name":"A"},"lines":[]}`); !strings.Contains(out, "edited") {
		t.Errorf("edit printed %q", out)
	}
	out := c.must("deadletters", "replay", id, "--tenant", "acme")
	if !strings.Contains(out, "1 dead letters replayed") {
		t.Fatalf("replay printed %q", out)
	}
	event := regexp.MustCompile(`as event (\S+)`).FindStringSubmatch(out)[1]
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(c.stdout("logs", "--tenant", "acme", "--remote-id", "2002", "-o", "json"), fmt.Sprintf(`"eventId": "%s"`, event)) {
		if time.Now().After(deadline) {
			t.Fatalf("the replayed event %s never reached the log:\n%s", event, c.stdout("logs", "--tenant", "acme", "--remote-id", "2002"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(c.stdout("logs", "--tenant", "acme", "--remote-id", "2002"), "created") {
		t.Error("the replayed order was not created")
	}
	if out := c.must("deadletters", "discard", id, "--tenant", "acme"); out != "1 dead letters discarded\n" {
		t.Errorf("discard printed %q", out)
	}
	if out, err := c.run("deadletters", "show", id, "--tenant", "acme", "--record"); err == nil || !strings.Contains(out+errString(err), "discarded") {
		t.Errorf("show --record of a discarded letter = %v\n%s", err, out)
	}
}
