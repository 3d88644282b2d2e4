package main

import (
	"errors"
	"runtime/debug"
	"strings"
	"testing"

	"connectrpc.com/connect"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
)

func TestExplainShowsTheMessageAndTheHintOnce(t *testing.T) {
	apiErr := func(msg, hint string) error {
		ce := connect.NewError(connect.CodeFailedPrecondition, errors.New(msg))
		if hint != "" {
			d, err := connect.NewErrorDetail(&controlplanev1.ErrorDetail{Reason: "ENDPOINT_IN_USE", Resource: "Endpoint acme/erp", Hint: hint})
			if err != nil {
				t.Fatal(err)
			}
			ce.AddDetail(d)
		}
		return ce
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"hint not in the message", apiErr("Endpoint acme/erp: flows use it: \"orders\"", "delete those flows first"),
			"Endpoint acme/erp: flows use it: \"orders\" (delete those flows first)"},
		{"hint in the message", apiErr("Endpoint acme/erp: flows use it (delete those flows first)", "delete those flows first"),
			"Endpoint acme/erp: flows use it (delete those flows first)"},
		{"no detail", apiErr("tenant \"globex\" is not yours", ""), "tenant \"globex\" is not yours"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := explain(tt.err, "http://127.0.0.1:7400")
			if got.Error() != tt.want {
				t.Errorf("explain = %q, want %q", got, tt.want)
			}
			if connect.CodeOf(got) != connect.CodeFailedPrecondition {
				t.Errorf("explain lost the code: %v", connect.CodeOf(got))
			}
		})
	}
}

func TestClientCommandsSayWhenTheAPIIsNotThere(t *testing.T) {
	for _, args := range [][]string{
		{"get", "tenants"},
		{"delete", "flow", "orders", "--tenant", "acme"},
		{"token", "rotate", "shop-to-erp", "--tenant", "acme"},
	} {
		out, err := run(t, append(args, "--server", "http://127.0.0.1:1", "--token", "sla_not-used-here")...)
		if err == nil || !strings.Contains(err.Error(), "cannot reach the API at http://127.0.0.1:1") {
			t.Errorf("syncline %s against no server = %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestVersion(t *testing.T) {
	byFlag, err := run(t, "--version")
	if err != nil {
		t.Fatal(err)
	}
	byCommand, err := run(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(byFlag, "syncline ") || byFlag != byCommand {
		t.Errorf("syncline --version printed %q and syncline version %q; want the same line, starting with syncline", byFlag, byCommand)
	}

	built := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.1.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "b7111ca790669a6b22b2140dd48a351cc0fd5468"},
		{Key: "vcs.time", Value: "2026-12-06T01:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	want := "syncline v0.1.0 (commit b7111ca790669a6b22b2140dd48a351cc0fd5468, 2026-12-06T01:00:00Z, with uncommitted changes, go1.26.8)"
	if got := versionText(built, true); got != want {
		t.Errorf("versionText of a git build = %q, want %q", got, want)
	}
	if got := versionText(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, true); got != "syncline (devel) (go1.26.8)" {
		t.Errorf("versionText of a build without VCS information = %q", got)
	}
}
