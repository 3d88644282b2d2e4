package main

import (
	"strings"
	"testing"

	"connectrpc.com/connect"
)

func TestTokenRotateRevokeAndScope(t *testing.T) {
	c := newCLI(t)
	old := tokenIn(t, c.must("apply", "-f", example("orders.yaml")))

	// An integrator token sees its own tenant, without --tenant, and no other.
	if out := c.stdout("get", "flows", "--token", old); !strings.Contains(out, "orders") {
		t.Errorf("get flows with the integrator's token printed\n%s", out)
	}
	out, err := c.run("get", "flows", "--tenant", "globex", "--token", old)
	if connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(out+errString(err), `tenant "globex" is not yours`) {
		t.Errorf("get flows --tenant globex with acme's integrator token = %v (%v)\n%s; want a permission error", err, connect.CodeOf(err), out)
	}

	rotated := c.must("token", "rotate", "shop-to-erp", "--tenant", "acme")
	token := tokenIn(t, rotated)
	want := "integrator acme/shop-to-erp has a new token; the old one no longer works\n  token: " + token + "  (store it now: it is shown only this once)\n"
	if rotated != want || token == old {
		t.Errorf("token rotate printed\n%s\nwant\n%s", rotated, want)
	}
	_, err = c.run("get", "flows", "--token", old)
	if connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(errString(err), "token not recognised") {
		t.Errorf("the rotated token = %v, want token not recognised", err)
	}
	if out := c.stdout("get", "flows", "--token", token); !strings.Contains(out, "orders") {
		t.Errorf("get flows with the new token printed\n%s", out)
	}

	// The integrator's own token may revoke itself; the tenant is its own.
	if out := c.must("token", "revoke", "shop-to-erp", "--token", token); out != "integrator shop-to-erp: token revoked; syncline token rotate gives it a new one\n" {
		t.Errorf("token revoke printed %q", out)
	}
	if _, err := c.run("get", "flows", "--token", token); !strings.Contains(errString(err), "token not recognised") {
		t.Errorf("the revoked token = %v, want token not recognised", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
