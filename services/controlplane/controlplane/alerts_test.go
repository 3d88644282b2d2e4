package controlplane_test

import (
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/flowconfig"
)

// TestTenantAlertsReachTheDataPlane: a tenant's alert webhook is checked
// when applied, compiled into the tenant's bucket entry with its secret
// sealed, and changes or goes without a restart; the secret is write-only.
func TestTenantAlertsReachTheDataPlane(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	const secret = "alert-secret-4f1b9c7e-never-show"
	tenant := func(alerts map[string]any) *controlplanev1.Resource {
		spec := map[string]any{}
		if alerts != nil {
			spec["alerts"] = alerts
		}
		return res(t, "Tenant", "", "acme", spec)
	}
	var seen []string
	apply := func(r *controlplanev1.Resource, dry bool) *controlplanev1.ApplyResponse {
		t.Helper()
		resp, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{r}, DryRun: dry})
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, protojson.Format(resp))
		return resp
	}

	for _, tc := range []struct {
		alerts map[string]any
		says   []string
	}{
		{map[string]any{"secret": secret}, []string{"spec.alerts.webhook", "is required"}},
		{map[string]any{"webhook": "ftp://hooks.example.com/x", "secret": secret}, []string{"spec.alerts.webhook", "http:// or https://"}},
		{map[string]any{"webhook": "https:///x", "secret": secret}, []string{"spec.alerts.webhook", "no host"}},
		{map[string]any{"webhook": "https://u:pw@hooks.example.com/x", "secret": secret}, []string{"spec.alerts.webhook", "user or password"}},
		{map[string]any{"webhook": "https://hooks.example.com/x", "secret": "short"}, []string{"spec.alerts.secret", "at least 16"}},
		{map[string]any{"webhook": "https://hooks.example.com/x"}, []string{"spec.alerts.secret", "is required"}},
		{map[string]any{"webhook": "https://hooks.example.com/x", "secret": "(secret)"}, []string{"spec.alerts.secret", "is required"}},
		{map[string]any{"webhook": "https://hooks.example.com/x", "secret": secret, "minInterval": "soon"}, []string{"spec.alerts.minInterval", "not a duration"}},
		{map[string]any{"webhook": "https://hooks.example.com/x", "secret": secret, "minInterval": "10ms"}, []string{"spec.alerts.minInterval", "1s to 24h"}},
		{map[string]any{"webhook": "https://hooks.example.com/x", "secret": secret, "sealedSecret": "v1:x"}, []string{"spec.alerts.sealedSecret", "the server's"}},
		{map[string]any{"webhook": "https://hooks.example.com/x", "secret": secret, "retries": 3}, []string{"unknown field", "retries"}},
	} {
		_, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{tenant(tc.alerts)}})
		wantErr(t, err, connect.CodeInvalidArgument, "INVALID_RESOURCE", tc.says...)
		if err != nil {
			seen = append(seen, err.Error())
		}
	}

	apply(tenant(map[string]any{"webhook": "https://hooks.example.com/acme", "secret": secret}), false)
	waitAlerts(t, f, func(a *flowconfig.Alerts) bool { return a != nil })
	a := f.flows.Alerts("acme")
	if a.Webhook != "https://hooks.example.com/acme" || a.MinInterval != 30*time.Second {
		t.Errorf("compiled alerts: webhook %q, interval %s; want the URL and the 30s default", a.Webhook, a.MinInterval)
	}
	plain, err := f.box.Open(flowconfig.AlertsBinding("acme"), a.Secret)
	if err != nil || string(plain) != secret {
		t.Fatalf("opening the published secret: %q, %v", plain, err)
	}
	if _, err := f.box.Open(flowconfig.AlertsBinding("globex"), a.Secret); err == nil {
		t.Error("the alert secret opens for another tenant")
	}
	seen = append(seen, a.Secret)

	// The same secret again, "(secret)" or none at all keep it: unchanged.
	for _, given := range []any{secret, "(secret)", nil} {
		alerts := map[string]any{"webhook": "https://hooks.example.com/acme"}
		if given != nil {
			alerts["secret"] = given
		}
		if got := apply(tenant(alerts), false).Results[0].Change; got != controlplanev1.Change_CHANGE_UNCHANGED {
			t.Errorf("secret %v for the stored one: %v, want unchanged", given, got)
		}
	}
	dry := apply(tenant(map[string]any{"webhook": "https://hooks.example.com/acme", "secret": "another-" + secret}), true)
	if d := dry.Results[0].Diff; !strings.Contains(d, "secret: (secret, changed)") {
		t.Errorf("dry-run diff of a new secret:\n%s\nwant it to say the secret changes", d)
	}
	got, err := f.client.GetResource(ctx, &controlplanev1.GetResourceRequest{Kind: "Tenant", Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, protojson.Format(got))
	alerts := got.Resource.Spec.Fields["alerts"].GetStructValue().GetFields()
	if v := alerts["secret"].GetStringValue(); v != "(secret)" || alerts["sealedSecret"] != nil {
		t.Errorf("get shows the alert secret as %q (sealed: %v), want (secret) only", v, alerts["sealedSecret"])
	}
	list, err := f.client.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: "Tenant"})
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, protojson.Format(list))
	stored, err := f.store.Get(ctx, "Tenant", "acme", "acme")
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, string(stored.Spec))
	for _, s := range seen {
		if strings.Contains(s, "4f1b9c7e") {
			t.Fatalf("the alert secret is readable: %s", s)
		}
	}

	// A new interval applies without a restart; alerts left out are gone.
	apply(tenant(map[string]any{"webhook": "https://hooks.example.com/acme", "minInterval": "5m"}), false)
	waitAlerts(t, f, func(a *flowconfig.Alerts) bool { return a != nil && a.MinInterval == 5*time.Minute })
	apply(tenant(nil), false)
	waitAlerts(t, f, func(a *flowconfig.Alerts) bool { return a == nil })
	if !f.flows.KnowsTenant("acme") {
		t.Error("a tenant without alerts is no longer known")
	}
}

func waitAlerts(t *testing.T, f *fixture, ok func(*flowconfig.Alerts) bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(f.flows.Alerts("acme")); waitTick() {
		if time.Now().After(deadline) {
			t.Fatalf("the data plane sees alerts %+v", f.flows.Alerts("acme"))
		}
	}
}
