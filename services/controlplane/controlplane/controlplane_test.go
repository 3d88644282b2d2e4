package controlplane_test

import (
	"context"
	"errors"
	"github.com/nats-io/nats.go/jetstream"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/syncline/syncline/connectors"
	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/bus"
	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/natstest"
	"github.com/syncline/syncline/pkg/secret"
	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/services/controlplane/controlplane"
	"github.com/syncline/syncline/services/controlplane/resource"
)

const (
	token   = "controlplane-test-token-0123456789"
	testKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
)

type fixture struct {
	client controlplanev1connect.ResourceServiceClient
	store  resource.Store
	flows  *flowconfig.Index
	url    string
	box    *secret.Box
	// data holds the store's file and the tenants' folders.
	data string
	js   jetstream.JetStream
}

// as returns a client that calls with tok.
func (f *fixture) as(tok string) controlplanev1connect.ResourceServiceClient {
	return controlplanev1connect.NewResourceServiceClient(http.DefaultClient, f.url, connect.WithInterceptors(auth.Bearer(tok)))
}

func setup(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	s := natstest.Run(t)
	_, js := natstest.Connect(t, s)
	data := t.TempDir()
	db, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(data, "cp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	store, err := resource.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := connectors.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	authn, err := auth.NewAuthenticator(token, store)
	if err != nil {
		t.Fatal(err)
	}
	key, err := secret.ParseKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	box, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	// The policy of a platform whose store is a SQLite file in data and
	// which lets endpoints reach a PostgreSQL server on loopback, the one
	// that also holds Syncline's own database.
	egress, err := sdk.NewEgress(sdk.EgressConfig{
		Allow: []string{"public", "127.0.0.1:1", "127.0.0.1:5432"},
		Files: filepath.Join(data, "tenants"),
		Protected: []sdk.Protected{
			{What: "Syncline's own store", Path: filepath.Join(data, "cp.db")},
			{What: "Syncline's own database", Host: "127.0.0.1", Port: 5432, Database: "syncline"},
			{What: "Syncline's own NATS server", Host: "127.0.0.1", Port: 4222},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := controlplane.New(controlplane.Deps{JetStream: js, Resources: store, Connectors: reg, Bus: bus.DefaultConfig(),
		Secrets: box, Egress: egress})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Mount(mux)
	srv := httptest.NewServer(authn.Handler(mux))
	t.Cleanup(srv.Close)
	kv, err := flowconfig.OpenBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	w := flowconfig.NewWatcher(kv, nil)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	client := controlplanev1connect.NewResourceServiceClient(srv.Client(), srv.URL, connect.WithInterceptors(auth.Bearer(token)))
	return &fixture{client: client, store: store, flows: w.Index(), url: srv.URL, box: box, data: data, js: js}
}

func res(t *testing.T, kind, tenant, name string, spec map[string]any) *controlplanev1.Resource {
	t.Helper()
	s, err := structpb.NewStruct(spec)
	if err != nil {
		t.Fatal(err)
	}
	return &controlplanev1.Resource{ApiVersion: "syncline.dev/v1", Kind: kind, Metadata: &controlplanev1.Metadata{Name: name, Tenant: tenant}, Spec: s}
}

// orders is a valid set of resources; fields overrides the flow's mapping
// fields and settings the target's settings.
func orders(t *testing.T, fields map[string]any) []*controlplanev1.Resource {
	return []*controlplanev1.Resource{
		res(t, "Tenant", "", "acme", map[string]any{}),
		res(t, "Integrator", "acme", "sync", map[string]any{}),
		res(t, "Endpoint", "acme", "shop", map[string]any{"type": "nats", "description": "webshop"}),
		res(t, "Endpoint", "acme", "erp", map[string]any{"type": "sql", "description": "ERP", "settings": map[string]any{
			"driver": "sqlite", "dsn": "erp.db", "table": "orders", "create_table": true}}),
		res(t, "Flow", "acme", "orders", map[string]any{"integrator": "sync", "source": "shop", "target": "erp", "entity": "order",
			"mapping": map[string]any{"fields": fields}}),
	}
}

func changes(resp *controlplanev1.ApplyResponse) string {
	var s []string
	for _, r := range resp.Results {
		s = append(s, strings.TrimPrefix(r.Change.String(), "CHANGE_"))
	}
	return strings.Join(s, ",")
}

func TestApplyCreatesUpdatesAndPublishes(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	resp, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: orders(t, map[string]any{"number": "source.number"})})
	if err != nil {
		t.Fatal(err)
	}
	if got := changes(resp); got != "CREATED,CREATED,CREATED,CREATED,CREATED" {
		t.Errorf("first apply: %s", got)
	}
	resp, err = f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: orders(t, map[string]any{"number": "source.number"})})
	if err != nil {
		t.Fatal(err)
	}
	if got := changes(resp); got != "UNCHANGED,UNCHANGED,UNCHANGED,UNCHANGED,UNCHANGED" {
		t.Errorf("second apply of the same files: %s", got)
	}
	// The data plane sees the flow, then its change, without a restart.
	waitFlow(t, f, 1)
	if fl := f.flows.Get("acme", "orders"); fl.Duplicates != flowconfig.DuplicateSkip || fl.Target.Settings["key_column"] != "external_ref" {
		t.Errorf("compiled flow = %+v: want the order default (skip) and the target's defaults filled in", fl)
	}
	resp, err = f.client.Apply(ctx, &controlplanev1.ApplyRequest{DryRun: true, Resources: orders(t, map[string]any{"number": "source.id"})})
	if err != nil {
		t.Fatal(err)
	}
	if got := changes(resp); got != "UNCHANGED,UNCHANGED,UNCHANGED,UNCHANGED,UPDATED" {
		t.Errorf("dry run: %s", got)
	}
	if r, _ := f.store.Get(ctx, "Flow", "acme", "orders"); r.Generation != 1 {
		t.Errorf("a dry run changed the stored flow to generation %d", r.Generation)
	}
	resp, err = f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: orders(t, map[string]any{"number": "source.id"})})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Results[4].Generation != 2 {
		t.Errorf("updated flow generation = %d, want 2", resp.Results[4].Generation)
	}
	waitFlow(t, f, 2)
	if got := f.flows.Get("acme", "orders").Mapping.Fields["number"]; got != "source.id" {
		t.Errorf("data plane runs mapping %q, want the new source.id", got)
	}
}

func waitFlow(t *testing.T, f *fixture, generation int64) {
	t.Helper()
	for range 500 {
		if fl := f.flows.Get("acme", "orders"); fl != nil && fl.Generation == generation {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the data plane never saw generation %d of the flow", generation)
}

func TestApplyRefusals(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	tests := []struct {
		name      string
		resources func() []*controlplanev1.Resource
		code      connect.Code
		want      []string
	}{
		{"mapping that does not compile", func() []*controlplanev1.Resource {
			return orders(t, map[string]any{"total": "sourc.total"})
		}, connect.CodeInvalidArgument, []string{"Flow orders", "spec.mapping", "fields.total", "undeclared reference to 'sourc'", "(1:1)"}},
		{"flow refers to a missing endpoint", func() []*controlplanev1.Resource {
			return append(orders(t, map[string]any{"n": "source.n"})[:3], orders(t, map[string]any{"n": "source.n"})[4])
		}, connect.CodeFailedPrecondition, []string{"Flow acme/orders", "Endpoint \"erp\"", "does not exist"}},
		{"endpoint settings the connector refuses", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[3] = res(t, "Endpoint", "acme", "erp", map[string]any{"type": "sql", "description": "ERP", "settings": map[string]any{"driver": "mysql", "dsn": "x"}})
			return rs
		}, connect.CodeInvalidArgument, []string{"Endpoint erp", "settings.driver", "settings.table"}},
		{"a credential given as a setting", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[3] = res(t, "Endpoint", "acme", "erp", map[string]any{"type": "sql", "description": "ERP", "settings": map[string]any{
				"driver": "postgres", "dsn": "postgres://erp@db/erp", "table": "orders", "password": "hunter2"}})
			return rs
		}, connect.CodeInvalidArgument, []string{"spec.settings.password is a credential", "spec.credentials"}},
		{"a password in the DSN", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[3] = res(t, "Endpoint", "acme", "erp", map[string]any{"type": "sql", "description": "ERP", "settings": map[string]any{
				"driver": "postgres", "dsn": "postgres://erp:hunter2@db/erp", "table": "orders"}})
			return rs
		}, connect.CodeInvalidArgument, []string{"settings.dsn", "without a password"}},
		{"a credential the connector does not have", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[3] = res(t, "Endpoint", "acme", "erp", map[string]any{"type": "sql", "description": "ERP", "settings": map[string]any{
				"driver": "sqlite", "dsn": "x.db", "table": "orders"}, "credentials": map[string]any{"apikey": "k"}})
			return rs
		}, connect.CodeInvalidArgument, []string{"spec.credentials.apikey", "its credentials: password"}},
		{"a keyless policy that does not exist", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[4].Spec.Fields["keyless"] = structpb.NewStringValue("drop")
			return rs
		}, connect.CodeInvalidArgument, []string{"spec.keyless", `"drop"`, "skip", "export"}},
		{"a write mode that does not exist", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[4].Spec.Fields["writeModes"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"price": structpb.NewStringValue("sometimes")}})
			return rs
		}, connect.CodeInvalidArgument, []string{"spec.writeModes.price", `"sometimes"`, "if_empty"}},
		{"a key field that is not a field path", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[4].Spec.Fields["keyField"] = structpb.NewStringValue("source.sku[0]")
			return rs
		}, connect.CodeInvalidArgument, []string{"spec.keyField", "dotted path"}},
		{"a polling schedule no source connector can run", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[4].Spec.Fields["schedule"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"mode": structpb.NewStringValue("interval"), "every": structpb.NewStringValue("5m")}})
			return rs
		}, connect.CodeFailedPrecondition, []string{"spec.schedule.mode", "needs a source that is polled", "nats endpoint"}},
		{"a cron schedule that is not one", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[4].Spec.Fields["schedule"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"mode": structpb.NewStringValue("cron"), "cron": structpb.NewStringValue("*/5 * *")}})
			return rs
		}, connect.CodeInvalidArgument, []string{"spec.schedule.cron", "five fields"}},
		{"a schedule in a time zone that does not exist", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[4].Spec.Fields["schedule"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"mode": structpb.NewStringValue("cron"), "cron": structpb.NewStringValue("0 * * * *"), "timezone": structpb.NewStringValue("Mars/Olympus")}})
			return rs
		}, connect.CodeInvalidArgument, []string{"spec.schedule.timezone", "IANA"}},
		{"an interval too short", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[4].Spec.Fields["schedule"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"mode": structpb.NewStringValue("interval"), "every": structpb.NewStringValue("10ms")}})
			return rs
		}, connect.CodeInvalidArgument, []string{"spec.schedule.every", "webhook"}},
		{"a flow whose target is a source", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[3] = res(t, "Endpoint", "acme", "erp", map[string]any{"type": "nats", "description": "another event source"})
			return rs
		}, connect.CodeFailedPrecondition, []string{"flow acme/orders", "target endpoint erp", `"nats" is a source connector`}},
		{"a flow of an entity its target does not serve", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[3] = res(t, "Endpoint", "acme", "erp", map[string]any{"type": "tryton", "description": "Tryton ERP",
				"settings":    map[string]any{"url": "http://127.0.0.1:1", "database": "erp", "user": "syncline"},
				"credentials": map[string]any{"password": "secret"}})
			rs[4].Spec.Fields["entity"] = structpb.NewStringValue("cash-document")
			return rs
		}, connect.CodeFailedPrecondition, []string{"flow acme/orders", "target endpoint erp", `does not serve "cash-document"`,
			"it serves customer, product, category, stock, order, invoice, payment, goods-receipt, order-return, inventory-count, write-off"}},
		{"a document policy on a flow of customers", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[4].Spec.Fields["entity"] = structpb.NewStringValue("customer")
			rs[4].Spec.Fields["document"] = document(t, map[string]any{"state": "confirmed"})
			return rs
		}, connect.CodeInvalidArgument, []string{"spec.document", "applies to document flows", "entity is customer"}},
		{"a default customer that is not an e-mail address", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[4].Spec.Fields["document"] = document(t, map[string]any{"defaultCustomer": "cash sales"})
			return rs
		}, connect.CodeInvalidArgument, []string{"spec.document.defaultCustomer", `"cash sales" is not an e-mail address`}},
		{"a document state that is not a word", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[4].Spec.Fields["document"] = document(t, map[string]any{"state": strings.Repeat("confirmed ", 100)})
			return rs
		}, connect.CodeInvalidArgument, []string{"spec.document.state", "characters long"}},
		{"a default customer too long to be an e-mail address", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[4].Spec.Fields["document"] = document(t, map[string]any{"defaultCustomer": strings.Repeat("a", 300) + "@shop.example"})
			return rs
		}, connect.CodeInvalidArgument, []string{"spec.document.defaultCustomer", "at most 254"}},
		{"a document type map of a type orders do not have", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[4].Spec.Fields["document"] = document(t, map[string]any{"types": map[string]any{"quote": "order"}})
			return rs
		}, connect.CodeInvalidArgument, []string{"spec.document.types.quote", "order or invoice"}},
		{"a document policy for a target that takes records as mapped", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[4].Spec.Fields["document"] = document(t, map[string]any{"state": "confirmed"})
			return rs
		}, connect.CodeFailedPrecondition, []string{"flow acme/orders", "spec.document", "target endpoint erp (sql)", "not in their canonical shape"}},
		{"a value map of a field only the canonical order has, for a table", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{})
			rs[4].Spec.Fields["mapping"] = document(t, map[string]any{"valueMaps": map[string]any{"payment_term": map[string]any{"values": map[string]any{"prepaid": "Immediate"}}}})
			return rs
		}, connect.CodeFailedPrecondition, []string{"flow acme/orders", "spec.mapping over its flat default mapping", "target endpoint erp (sql)", `"payment_term"`}},
		{"endpoint without a description", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[2] = res(t, "Endpoint", "acme", "shop", map[string]any{"type": "nats"})
			return rs
		}, connect.CodeInvalidArgument, []string{"spec.description is required"}},
		{"misspelt spec field", func() []*controlplanev1.Resource {
			rs := orders(t, map[string]any{"n": "source.n"})
			rs[1] = res(t, "Integrator", "acme", "sync", map[string]any{"stge": "active"})
			return rs
		}, connect.CodeInvalidArgument, []string{"Integrator sync", `unknown field "stge"`}},
		{"name that is not subject-safe", func() []*controlplanev1.Resource {
			return []*controlplanev1.Resource{res(t, "Tenant", "", "Acme.Corp", map[string]any{})}
		}, connect.CodeInvalidArgument, []string{"metadata.name", "'A' at position 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: tt.resources()})
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != tt.code {
				t.Fatalf("Apply = %v, want code %v", err, tt.code)
			}
			for _, w := range tt.want {
				if !strings.Contains(ce.Message(), w) {
					t.Errorf("error %q does not say %q", ce.Message(), w)
				}
			}
			// A refused apply changes nothing.
			if list, _ := f.store.List(ctx, "Tenant", ""); len(list) != 0 {
				t.Errorf("a refused apply stored %d tenants", len(list))
			}
		})
	}
}

func TestEveryCallNeedsTheToken(t *testing.T) {
	f := setup(t)
	for _, tok := range []string{"", "wrong-token-0123456789"} {
		c := controlplanev1connect.NewResourceServiceClient(http.DefaultClient, f.url, connect.WithInterceptors(auth.Bearer(tok)))
		_, err := c.ListResources(context.Background(), &controlplanev1.ListResourcesRequest{Kind: "Tenant"})
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("token %q: ListResources = %v, want Unauthenticated", tok, err)
		}
	}
}

// TestCompiledSettingsValidateAgain: the connector validates a flow's target settings again
// after they travelled as JSON in the flow config, so they must survive the trip, durations
// included.
func TestCompiledSettingsValidateAgain(t *testing.T) {
	f := setup(t)
	rs := orders(t, map[string]any{"number": "source.number"})
	rs[3] = res(t, "Endpoint", "acme", "erp", map[string]any{"type": "rest", "description": "ERP API", "settings": map[string]any{
		"base_url": "http://127.0.0.1:1/api", "timeout": "5s", "entities": map[string]any{"order": map[string]any{"path": "/orders"}}}})
	if _, err := f.client.Apply(context.Background(), &controlplanev1.ApplyRequest{Resources: rs}); err != nil {
		t.Fatal(err)
	}
	waitFlow(t, f, 1)
	fl := f.flows.Get("acme", "orders")
	if got := fl.Target.Settings["timeout"]; got != "5s" {
		t.Errorf("compiled timeout = %#v, want \"5s\"", got)
	}
	reg, err := connectors.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.ValidateSettings(fl.Target.Type, fl.Target.Settings); err != nil {
		t.Errorf("the compiled settings do not validate again: %v", err)
	}
}

func document(t *testing.T, m map[string]any) *structpb.Value {
	t.Helper()
	v, err := structpb.NewValue(m)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestTrytonStockDocumentFlows: flows of each stock document Tryton serves into a tryton
// endpoint are accepted, each in a state Tryton takes it to, and compiled with the
// document's skip policy and the state; a state Tryton does not take it to is refused,
// naming those it does.
func TestTrytonStockDocumentFlows(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	rs := orders(t, map[string]any{})
	rs[3] = res(t, "Endpoint", "acme", "erp", map[string]any{"type": "tryton", "description": "Tryton ERP",
		"settings":    map[string]any{"url": "http://127.0.0.1:1", "database": "erp", "user": "syncline"},
		"credentials": map[string]any{"password": "secret"}})
	states := map[string]string{"goods-receipt": "received", "order-return": "done", "inventory-count": "done", "write-off": "draft"}
	for entity, state := range states {
		rs = append(rs, res(t, "Flow", "acme", entity+"s", map[string]any{"integrator": "sync", "source": "shop", "target": "erp", "entity": entity,
			"document": map[string]any{"state": state}}))
	}
	if _, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: rs}); err != nil {
		t.Fatalf("Apply = %v", err)
	}
	for entity, state := range states {
		var fl *flowconfig.Flow
		for range 500 {
			if fl = f.flows.Get("acme", entity+"s"); fl != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if fl == nil || fl.Duplicates != flowconfig.DuplicateSkip || fl.Document == nil || fl.Document.State != state || !fl.Canonical {
			t.Errorf("the %s flow compiled as %+v, want the skip policy, state %s, canonical", entity, fl, state)
		}
	}
	rs[len(rs)-1].Spec.Fields["document"] = document(t, map[string]any{"state": "posted"})
	_, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: rs})
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition || !strings.Contains(ce.Message(), "the document state posted") {
		t.Errorf("a state Tryton does not take a stock document to: %v", err)
	}
}

// TestDocumentFlowsCompile: a flow of each document type defaults to the skip policy, and a
// document flow to a target that reads it canonically is compiled with what the target can
// do with the customers and products its documents refer to, its document policy and the
// canonical default mapping.
func TestDocumentFlowsCompile(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	rs := orders(t, map[string]any{})
	rs[3] = res(t, "Endpoint", "acme", "erp", map[string]any{"type": "rest", "description": "ERP API", "settings": map[string]any{
		"base_url": "http://127.0.0.1:1/api", "entities": map[string]any{
			"order":         map[string]any{"path": "/orders", "canonical": true, "state_field": "state", "states": []any{"open", "confirmed"}},
			"goods-receipt": map[string]any{"path": "/receipts", "canonical": true},
			"customer":      map[string]any{"path": "/customers", "canonical": true, "lookup": map[string]any{"email": "email"}},
			"product":       map[string]any{"path": "/products", "canonical": true, "lookup": map[string]any{"sku": "sku"}},
		}}})
	rs[4].Spec.Fields["document"] = document(t, map[string]any{"state": "confirmed", "defaultCustomer": "POS@Shop.example", "types": map[string]any{"invoice": "order"}})
	receipts := res(t, "Flow", "acme", "receipts", map[string]any{"integrator": "sync", "source": "shop", "target": "erp", "entity": "goods-receipt"})
	if _, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: append(rs, receipts)}); err != nil {
		t.Fatal(err)
	}
	waitFlow(t, f, 1)
	var fl, gr *flowconfig.Flow
	for range 500 {
		if fl, gr = f.flows.Get("acme", "orders"), f.flows.Get("acme", "receipts"); gr != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if gr == nil || gr.Duplicates != flowconfig.DuplicateSkip {
		t.Fatalf("the goods receipt flow compiled as %+v, want the skip policy of documents", gr)
	}
	if d := fl.Document; d == nil || d.State != "confirmed" || d.DefaultCustomer != "pos@shop.example" || d.Types["invoice"] != "order" {
		t.Errorf("the order flow's document policy compiled as %+v", fl.Document)
	}
	var related []string
	for _, c := range fl.Target.Related {
		related = append(related, c.Entity)
	}
	if strings.Join(related, ",") != "customer,product" || !fl.Canonical || fl.Mapping.Fields["lines"] == "" || fl.Mapping.Defaults["employee_number"] != "999999" {
		t.Errorf("the order flow compiled with related %v, canonical %v, mapping %v", related, fl.Canonical, fl.Mapping)
	}
}
