package controlplane_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/secret"
)

// wantErr checks an error's code, its stable reason and what its message
// says.
func wantErr(t *testing.T, err error, code connect.Code, reason string, says ...string) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != code {
		t.Fatalf("err = %v, want code %v", err, code)
	}
	for _, s := range says {
		if !strings.Contains(ce.Message(), s) {
			t.Errorf("error %q does not say %q", ce.Message(), s)
		}
	}
	if reason == "" {
		return
	}
	for _, d := range ce.Details() {
		v, err := d.Value()
		if detail, ok := v.(*controlplanev1.ErrorDetail); err == nil && ok {
			if detail.Reason != reason {
				t.Errorf("reason %q, want %q", detail.Reason, reason)
			}
			return
		}
	}
	t.Errorf("error %q carries no ErrorDetail", ce.Message())
}

// twoTenants applies tenants a and b, each with an integrator, two
// endpoints and a flow, and returns each integrator's token.
func twoTenants(t *testing.T, f *fixture) map[string]string {
	t.Helper()
	tokens := map[string]string{}
	for _, tenant := range []string{"a", "b"} {
		rs := orders(t, map[string]any{"n": "source.n"})
		for _, r := range rs {
			if r.Kind == "Tenant" {
				r.Metadata.Name = tenant
			} else {
				r.Metadata.Tenant = tenant
			}
		}
		resp, err := f.client.Apply(t.Context(), &controlplanev1.ApplyRequest{Resources: rs})
		if err != nil {
			t.Fatal(err)
		}
		tokens[tenant] = resp.Results[1].Token
		if !strings.HasPrefix(tokens[tenant], auth.IntegratorPrefix) {
			t.Fatalf("creating integrator %s/sync gave token %q, want one starting %s", tenant, tokens[tenant], auth.IntegratorPrefix)
		}
	}
	return tokens
}

func TestIntegratorTokenSeesItsTenantOnly(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	tokens := twoTenants(t, f)
	a := f.as(tokens["a"])

	for _, kind := range []string{"Tenant", "Integrator", "Endpoint", "Flow"} {
		resp, err := a.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: kind})
		if err != nil {
			t.Fatalf("list %s: %v", kind, err)
		}
		for _, r := range resp.Resources {
			if r.Metadata.Tenant == "b" || r.Metadata.Name == "b" {
				t.Errorf("list %s with tenant a's token shows %s", kind, protojson.Format(r.Metadata))
			}
		}
		if len(resp.Resources) == 0 {
			t.Errorf("list %s with tenant a's token shows nothing of a", kind)
		}
		_, err = a.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: kind, Tenant: "b"})
		wantErr(t, err, connect.CodePermissionDenied, "", `tenant "b" is not yours`)
	}
	calls := map[string]func() error{
		"get": func() error {
			_, err := a.GetResource(ctx, &controlplanev1.GetResourceRequest{Kind: "Flow", Tenant: "b", Name: "orders"})
			return err
		},
		"get tenant": func() error {
			_, err := a.GetResource(ctx, &controlplanev1.GetResourceRequest{Kind: "Tenant", Name: "b"})
			return err
		},
		"update": func() error {
			rs := orders(t, map[string]any{"n": "source.m"})
			for _, r := range rs[1:] {
				r.Metadata.Tenant = "b"
			}
			_, err := a.Apply(ctx, &controlplanev1.ApplyRequest{Resources: rs[1:]})
			return err
		},
		"delete": func() error {
			_, err := a.DeleteResource(ctx, &controlplanev1.DeleteResourceRequest{Kind: "Flow", Tenant: "b", Name: "orders"})
			return err
		},
		"rotate": func() error {
			_, err := a.RotateToken(ctx, &controlplanev1.RotateTokenRequest{Tenant: "b", Integrator: "sync"})
			return err
		},
		"revoke": func() error {
			_, err := a.RevokeToken(ctx, &controlplanev1.RevokeTokenRequest{Tenant: "b", Integrator: "sync"})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			wantErr(t, call(), connect.CodePermissionDenied, "", `tenant "b" is not yours`)
		})
	}
	// Tenants are the operators'.
	_, err := a.Apply(ctx, &controlplanev1.ApplyRequest{Resources: orders(t, map[string]any{"n": "source.n"})[:1]})
	wantErr(t, err, connect.CodePermissionDenied, "", "needs the admin token")
	_, err = a.DeleteResource(ctx, &controlplanev1.DeleteResourceRequest{Kind: "Tenant", Name: "a"})
	wantErr(t, err, connect.CodePermissionDenied, "", "needs the admin token")
	// b is untouched, and a's own token works on a.
	if r, err := f.store.Get(ctx, "Flow", "b", "orders"); err != nil || r.Generation != 1 {
		t.Errorf("tenant b's flow: generation %d, %v", r.Generation, err)
	}
	if _, err := a.GetResource(ctx, &controlplanev1.GetResourceRequest{Kind: "Flow", Tenant: "a", Name: "orders"}); err != nil {
		t.Errorf("tenant a's token on tenant a: %v", err)
	}
}

func TestRotatedAndRevokedTokensGetNothing(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	old := twoTenants(t, f)["a"]
	list := func(c controlplanev1connect.ResourceServiceClient) error {
		_, err := c.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: "Flow"})
		return err
	}
	if err := list(f.as(old)); err != nil {
		t.Fatalf("the new token: %v", err)
	}
	rot, err := f.client.RotateToken(ctx, &controlplanev1.RotateTokenRequest{Tenant: "a", Integrator: "sync"})
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, list(f.as(old)), connect.CodeUnauthenticated, "", "rotated or revoked")
	if err := list(f.as(rot.Token)); err != nil {
		t.Fatalf("the rotated token: %v", err)
	}
	// The data plane learns the new hash and forgets the old one.
	waitToken(t, f, auth.Hash(rot.Token), true)
	waitToken(t, f, auth.Hash(old), false)
	if _, err := f.as(rot.Token).RevokeToken(ctx, &controlplanev1.RevokeTokenRequest{Integrator: "sync"}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, list(f.as(rot.Token)), connect.CodeUnauthenticated, "", "rotated or revoked")
	waitToken(t, f, auth.Hash(rot.Token), false)
	// The stored hashes are not the tokens.
	hashes, err := f.store.Tokens(ctx, "b")
	if err != nil || len(hashes) != 1 || strings.HasPrefix(hashes["sync"], auth.IntegratorPrefix) {
		t.Errorf("stored tokens of b: %v, %v; want one hash", hashes, err)
	}
}

func waitToken(t *testing.T, f *fixture, hash string, known bool) {
	t.Helper()
	for range 500 {
		_, _, err := f.flows.LookupToken(t.Context(), hash)
		if (err == nil) == known {
			return
		}
		waitTick()
	}
	t.Fatalf("the data plane's token index: hash known = %v, want %v", !known, known)
}

func TestDeleteRules(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	tokens := twoTenants(t, f)
	// An endpoint in use is not deleted, and the error names the flow.
	_, err := f.client.DeleteResource(ctx, &controlplanev1.DeleteResourceRequest{Kind: "Endpoint", Tenant: "a", Name: "erp"})
	wantErr(t, err, connect.CodeFailedPrecondition, "ENDPOINT_IN_USE", "Endpoint a/erp", `flows use it: "orders"`)
	resp, err := f.client.DeleteResource(ctx, &controlplanev1.DeleteResourceRequest{Kind: "Flow", Tenant: "a", Name: "orders"})
	if err != nil || len(resp.Removed) != 1 || resp.Removed[0].What != "Flow" {
		t.Fatalf("delete flow: %v, %v", resp, err)
	}
	if _, err := f.client.DeleteResource(ctx, &controlplanev1.DeleteResourceRequest{Kind: "Endpoint", Tenant: "a", Name: "erp"}); err != nil {
		t.Fatalf("delete an endpoint no flow uses: %v", err)
	}
	_, err = f.client.GetResource(ctx, &controlplanev1.GetResourceRequest{Kind: "Endpoint", Tenant: "a", Name: "erp"})
	wantErr(t, err, connect.CodeNotFound, "NOT_FOUND", `Endpoint "erp" of tenant "a"`)

	// Deleting an integrator is final: its token goes, it cannot come back.
	resp, err = f.client.DeleteResource(ctx, &controlplanev1.DeleteResourceRequest{Kind: "Integrator", Tenant: "b", Name: "sync"})
	if err != nil {
		t.Fatal(err)
	}
	if got := removedString(resp); got != "Integrator:1 token:1" {
		t.Errorf("delete integrator removed %s", got)
	}
	wantErr(t, func() error {
		_, err := f.as(tokens["b"]).ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: "Flow"})
		return err
	}(), connect.CodeUnauthenticated, "", "")
	again := orders(t, map[string]any{"n": "source.n"})[1]
	again.Metadata.Tenant = "b"
	_, err = f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{again}})
	wantErr(t, err, connect.CodeFailedPrecondition, "STAGE_TRANSITION", "deleted, which is final")
	_, err = f.client.RotateToken(ctx, &controlplanev1.RotateTokenRequest{Tenant: "b", Integrator: "sync"})
	wantErr(t, err, connect.CodeFailedPrecondition, "STAGE_TRANSITION", "gets no new token")
	// The data plane sees the stage, so that the mapper refuses its events.
	for range 500 {
		if fl := f.flows.Get("b", "orders"); fl != nil && fl.Stage == flowconfig.StageDeleted {
			return
		}
		waitTick()
	}
	t.Fatal("the data plane never saw the integrator deleted")
}

func removedString(resp *controlplanev1.DeleteResourceResponse) string {
	var parts []string
	for _, r := range resp.Removed {
		parts = append(parts, r.What+":"+itoa(r.Count))
	}
	return strings.Join(parts, " ")
}

func TestNamesAreImmutable(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	twoTenants(t, f)
	got, err := f.client.GetResource(ctx, &controlplanev1.GetResourceRequest{Kind: "Endpoint", Tenant: "a", Name: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	renamed := got.Resource
	if renamed.Metadata.Uid == "" {
		t.Fatal("a resource has no uid")
	}
	renamed.Metadata.Name = "webshop"
	renamed.Spec.Fields["description"] = structpbString("the webshop, renamed")
	_, err = f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{renamed}})
	wantErr(t, err, connect.CodeFailedPrecondition, "NAME_IMMUTABLE", "names are immutable", `Endpoint "shop"`, `"webshop"`)
	// The description is editable.
	renamed.Metadata.Name = "shop"
	resp, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{renamed}})
	if err != nil || resp.Results[0].Change != controlplanev1.Change_CHANGE_UPDATED {
		t.Fatalf("editing the description: %v, %v", resp, err)
	}
}

func TestCredentialsAreWriteOnly(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	const password = "hunter2-very-secret"
	endpoint := func(cred string) []*controlplanev1.Resource {
		rs := orders(t, map[string]any{"n": "source.n"})
		rs[3] = res(t, "Endpoint", "acme", "erp", map[string]any{"type": "sql", "description": "ERP", "settings": map[string]any{
			"driver": "postgres", "dsn": "postgres://erp@127.0.0.1:1/erp", "table": "orders"}, "credentials": map[string]any{"password": cred}})
		return rs
	}
	var seen []string // every response, as text
	apply := func(rs []*controlplanev1.Resource) *controlplanev1.ApplyResponse {
		t.Helper()
		resp, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: rs})
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, protojson.Format(resp))
		return resp
	}
	apply(endpoint(password))
	if got := apply(endpoint(password)).Results[3].Change; got != controlplanev1.Change_CHANGE_UNCHANGED {
		t.Errorf("the same credentials again: %v, want unchanged", got)
	}
	if got := apply(endpoint("(secret)")).Results[3].Change; got != controlplanev1.Change_CHANGE_UNCHANGED {
		t.Errorf(`"(secret)" for a stored credential: %v, want unchanged`, got)
	}
	dry, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{DryRun: true, Resources: endpoint("another-" + password)})
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, protojson.Format(dry))
	if d := dry.Results[3].Diff; !strings.Contains(d, "password: (secret, changed)") {
		t.Errorf("dry-run diff of a new password:\n%s\nwant it to say the credential changes", d)
	}
	got, err := f.client.GetResource(ctx, &controlplanev1.GetResourceRequest{Kind: "Endpoint", Tenant: "acme", Name: "erp"})
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, protojson.Format(got))
	if v := got.Resource.Spec.Fields["credentials"].GetStructValue().Fields["password"].GetStringValue(); v != "(secret)" {
		t.Errorf("get shows credential password as %q, want (secret)", v)
	}
	// A secret setting (the DSN may hold a password in its query) is not
	// shown either, and applying what get shows keeps it.
	if v := got.Resource.Spec.Fields["settings"].GetStructValue().Fields["dsn"].GetStringValue(); v != "(secret)" {
		t.Errorf("get shows the secret setting dsn as %q, want (secret)", v)
	}
	again, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{got.Resource}})
	if err != nil || again.Results[0].Change != controlplanev1.Change_CHANGE_UNCHANGED {
		t.Errorf("applying the endpoint as get shows it: %v, %v; want unchanged", again, err)
	}
	list, err := f.client.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: "Endpoint"})
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, protojson.Format(list))
	stored, err := f.store.Get(ctx, "Endpoint", "acme", "erp")
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, string(stored.Spec))
	waitFlow(t, f, 1)
	fl := f.flows.Get("acme", "orders")
	seen = append(seen, fl.Target.Credentials)
	for k, v := range fl.Target.Settings {
		seen = append(seen, k, toString(v))
	}
	for _, s := range seen {
		if strings.Contains(s, "hunter2") {
			t.Fatalf("a credential's value is readable: %s", s)
		}
	}
	// What the data plane gets opens, under the master key and bound to this endpoint only.
	plain, err := f.box.Open(flowconfig.CredentialsBinding("acme", "erp"), fl.Target.Credentials)
	if err != nil || !strings.Contains(string(plain), password) {
		t.Fatalf("opening the published credentials: %q, %v", plain, err)
	}
	if _, err := f.box.Open(flowconfig.CredentialsBinding("acme", "shop"), fl.Target.Credentials); err == nil {
		t.Error("credentials open for another endpoint")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func toString(v any) string { return fmt.Sprint(v) }

func structpbString(s string) *structpb.Value { return structpb.NewStringValue(s) }

func waitTick() { time.Sleep(10 * time.Millisecond) }

func TestDefaultMappings(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	def, err := f.client.GetDefaultMapping(ctx, &controlplanev1.GetDefaultMappingRequest{Entity: "order"})
	if err != nil {
		t.Fatal(err)
	}
	fields := def.Mapping.Fields["fields"].GetStructValue().AsMap()
	if fields["order_number"] != "source.?number" || len(def.Entities) < 5 {
		t.Errorf("default order mapping = %v (entities %v)", fields, def.Entities)
	}
	_, err = f.client.GetDefaultMapping(ctx, &controlplanev1.GetDefaultMappingRequest{Entity: "spaceship"})
	wantErr(t, err, connect.CodeNotFound, "NOT_FOUND", `"spaceship" has no default mapping`, "order")

	// A flow that names one field runs the default for the rest.
	rs := orders(t, map[string]any{"total": "double(source.subtotal)"})
	rs[4].Spec.Fields["mapping"].GetStructValue().Fields["exclude"] = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("company")}})
	if _, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: rs}); err != nil {
		t.Fatal(err)
	}
	waitFlow(t, f, 1)
	m := f.flows.Get("acme", "orders").Mapping
	if m.Fields["total"] != "double(source.subtotal)" || m.Fields["order_number"] != "source.?number" || m.Defaults["employee_number"] == nil {
		t.Errorf("compiled mapping = %+v: want the flow's total and the default's other fields and defaults", m)
	}
	if _, ok := m.Fields["company"]; ok {
		t.Error("an excluded default field is still mapped")
	}
}

func TestFlowPoliciesReachTheDataPlane(t *testing.T) {
	f := setup(t)
	rs := orders(t, map[string]any{"n": "source.n"})
	spec := rs[4].Spec.Fields
	spec["keyField"] = structpb.NewStringValue("number")
	spec["keyless"] = structpb.NewStringValue("export")
	spec["writeModes"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"status": structpb.NewStringValue("if_empty")}})
	if _, err := f.client.Apply(t.Context(), &controlplanev1.ApplyRequest{Resources: rs}); err != nil {
		t.Fatal(err)
	}
	waitFlow(t, f, 1)
	fl := f.flows.Get("acme", "orders")
	if fl.KeyField != "number" || fl.Keyless != "export" || fl.WriteModes["status"] != "if_empty" || fl.Stage != "active" {
		t.Errorf("compiled flow: key %q, keyless %q, write modes %v, stage %q", fl.KeyField, fl.Keyless, fl.WriteModes, fl.Stage)
	}
	// What the target can do with the entity, as its connector declares it.
	if c := fl.Target.Caps; c == nil || c.Entity != fl.Entity || !c.CanFind("external_ref") || !c.Read || !c.Create || !c.Update || !c.Delete || c.Canonical || fl.Canonical {
		t.Errorf("compiled flow: target capabilities %+v, canonical %v; want the sql target's, for entity %s", c, fl.Canonical, fl.Entity)
	}
}

// TestCredentialsAfterAMasterKeyChange: credentials sealed under another
// master key cannot be kept with "(secret)", but giving the values again
// replaces them.
func TestCredentialsAfterAMasterKeyChange(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	endpoint := func(cred string) []*controlplanev1.Resource {
		rs := orders(t, map[string]any{"n": "source.n"})
		rs[3] = res(t, "Endpoint", "acme", "erp", map[string]any{"type": "sql", "description": "ERP", "settings": map[string]any{
			"driver": "postgres", "dsn": "postgres://erp@127.0.0.1:1/erp", "table": "orders"}, "credentials": map[string]any{"password": cred}})
		return rs
	}
	if _, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: endpoint("first")}); err != nil {
		t.Fatal(err)
	}
	// The stored credentials as another master key sealed them.
	key, _ := secret.NewKey()
	raw, _ := secret.ParseKey(key)
	other, _ := secret.New(raw)
	sealed, err := other.Seal(flowconfig.CredentialsBinding("acme", "erp"), []byte(`{"password":"first"}`))
	if err != nil {
		t.Fatal(err)
	}
	stored, err := f.store.Get(ctx, "Endpoint", "acme", "erp")
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(stored.Spec, &spec); err != nil {
		t.Fatal(err)
	}
	spec["sealedCredentials"] = sealed
	stored.Spec, _ = json.Marshal(spec)
	if _, _, err := f.store.Put(ctx, stored); err != nil {
		t.Fatal(err)
	}
	_, err = f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: endpoint("(secret)")})
	wantErr(t, err, connect.CodeFailedPrecondition, "INVALID_RESOURCE", "give every credential's value again")
	resp, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: endpoint("second")})
	if err != nil || resp.Results[3].Change != controlplanev1.Change_CHANGE_UPDATED {
		t.Fatalf("giving the value again: %v, %v; want the endpoint updated", resp, err)
	}
	now, _ := f.store.Get(ctx, "Endpoint", "acme", "erp")
	_, resealed := storedSealed(t, now.Spec)
	if plain, err := f.box.Open(flowconfig.CredentialsBinding("acme", "erp"), resealed); err != nil || !strings.Contains(string(plain), "second") {
		t.Errorf("the new credentials under the current key: %q, %v", plain, err)
	}
}

func storedSealed(t *testing.T, spec json.RawMessage) (map[string]any, string) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(spec, &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m["sealedCredentials"].(string)
	return m, s
}
