package allinone_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/ingest"
)

// TestCustomersIntoTryton runs webshop customers through the whole pipeline
// into a real Tryton, with the platform's default customer mapping: a
// company customer becomes a company party with its contact person, a
// person a person party, a customer the ERP already holds (made there by
// hand, unknown to the ledger) is kept under the flow's skip policy, and a
// record without an e-mail is refused at the mapper, naming the field. The
// parties are read back over Tryton's own JSON-RPC, the outcomes from the
// API log.
func TestCustomersIntoTryton(t *testing.T) {
	srv := trytonServer(t)
	db := srv.NewDatabase(t)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, options{dir: t.TempDir(), driver: "sqlite", allow: []string{u.Host}})
	// A customer the ERP holds already, with the reference the flow would
	// give it: the ledger has never heard of it.
	var made []int64
	db.Call(t, &made, "model.party.party.create", []map[string]any{{"name": "Grace Hopper (by hand)",
		"identifiers": []any{[]any{"create", []map[string]any{{"code": "syncline:c-3"}}}}}}, map[string]any{})
	if _, err := e.resource.Apply(t.Context(), &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		resourceOf(t, "Tenant", "", "acme", map[string]any{}),
		resourceOf(t, "Integrator", "acme", "shop-to-erp", map[string]any{}),
		resourceOf(t, "Endpoint", "acme", "shop", map[string]any{"type": "nats", "description": "webshop"}),
		resourceOf(t, "Endpoint", "acme", "erp", map[string]any{"type": "tryton", "description": "Tryton ERP",
			"settings":    map[string]any{"url": srv.URL, "database": db.Name, "user": "admin"},
			"credentials": map[string]any{"password": "admin"}}),
		resourceOf(t, "Flow", "acme", "customers", map[string]any{"integrator": "shop-to-erp", "source": "shop", "target": "erp",
			"entity": "customer", "duplicates": "skip", "mapping": map[string]any{}}),
	}}); err != nil {
		t.Fatalf("applying: %v", err)
	}
	customer := func(key, payload string) ingest.Change {
		return ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "customer", Key: key, Version: 1, Payload: []byte(payload)}
	}
	e.publish(
		customer("c-1", `{"email":"Jane.Doe@ACME.example","first_name":"Jane","last_name":"Doe","company":"ACME GmbH",
			"billing_address":{"address_1":"Hauptstr.","house_number":"1","zip":"10115","city":"Berlin","country":"de"}}`),
		customer("c-2", `{"email":"max@example.com","first_name":"Max","last_name":"Mustermann"}`),
		customer("c-3", `{"email":"grace@example.com","first_name":"Grace","last_name":"Hopper"}`),
		customer("c-4", `{"first_name":"No","last_name":"Email"}`),
	)

	want := map[string]string{"c-1": "created success ", "c-2": "created success ", "c-3": "skipped success duplicate", "c-4": "failed failure invalid_record"}
	eventually(t, time.Minute, func() string {
		got := map[string]string{}
		for _, r := range e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Flow: "customers"}) {
			got[r.RemoteId] = r.Action + " " + r.Status + " " + r.Code
		}
		for k, w := range want {
			if got[k] != w {
				return fmt.Sprintf("API log of %s: %q, want %q (all: %v)", k, got[k], w, got)
			}
		}
		return ""
	})
	if r := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: "c-4"}); len(r) != 1 || !strings.Contains(r[0].Reason, "email") {
		t.Errorf("the refusal of c-4 = %+v, want it to name the field email", r)
	}

	type party struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	byRef := func(key string) []party {
		var ids []struct {
			Party int64 `json:"party"`
		}
		db.Call(t, &ids, "model.party.identifier.search_read", []any{[]any{"code", "=", "syncline:" + key}}, 0, nil, nil, []string{"party"}, map[string]any{})
		var out []party
		for _, id := range ids {
			var p []party
			db.Call(t, &p, "model.party.party.read", []int64{id.Party}, []string{"name"}, map[string]any{})
			out = append(out, p...)
		}
		return out
	}
	if p := byRef("c-1"); len(p) != 1 || p[0].Name != "ACME GmbH" {
		t.Errorf("c-1 in Tryton: %+v, want one company party ACME GmbH", p)
	}
	if p := byRef("c-2"); len(p) != 1 || p[0].Name != "Max Mustermann" {
		t.Errorf("c-2 in Tryton: %+v, want one person party Max Mustermann", p)
	}
	if p := byRef("c-3"); len(p) != 1 || p[0].Name != "Grace Hopper (by hand)" || p[0].ID != made[0] {
		t.Errorf("c-3 in Tryton: %+v, want the party made by hand, kept as it was", p)
	}
	if p := byRef("c-4"); len(p) != 0 {
		t.Errorf("c-4 in Tryton: %+v, want none", p)
	}

	// A flow whose ledger knows none of them (a new flow on the same ERP, as
	// after a lost ledger) sends the same customers again: each is found by
	// its reference, and Tryton still holds one party per customer.
	if _, err := e.resource.Apply(t.Context(), &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		resourceOf(t, "Flow", "acme", "customers-again", map[string]any{"integrator": "shop-to-erp", "source": "shop", "target": "erp",
			"entity": "customer", "duplicates": "update", "mapping": map[string]any{}}),
	}}); err != nil {
		t.Fatalf("applying the second flow: %v", err)
	}
	e.publish(
		customer("c-1", `{"email":"Jane.Doe@ACME.example","first_name":"Jane","last_name":"Doe","company":"ACME GmbH",
			"billing_address":{"address_1":"Hauptstr.","house_number":"1","zip":"10115","city":"Berlin","country":"de"}}`),
		customer("c-2", `{"email":"max@example.com","first_name":"Max","last_name":"Mustermann"}`),
	)
	eventually(t, time.Minute, func() string {
		got := map[string]string{}
		for _, r := range e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Flow: "customers-again"}) {
			got[r.RemoteId] = r.Action + " " + r.Status
		}
		for _, k := range []string{"c-1", "c-2"} {
			if got[k] != "created success" && got[k] != "updated success" {
				return fmt.Sprintf("API log of %s in the second flow: %q, want created or updated (all: %v)", k, got[k], got)
			}
		}
		return ""
	})
	for _, k := range []string{"c-1", "c-2"} {
		if p := byRef(k); len(p) != 1 {
			t.Errorf("%s in Tryton after the second flow: %+v, want one party", k, p)
		}
	}

	var contacts []struct {
		To *struct {
			Name string `json:"name"`
		} `json:"to."`
	}
	db.Call(t, &contacts, "model.party.relation.all.search_read", []any{[]any{"from_.name", "=", "ACME GmbH"}}, 0, nil, nil, []string{"to.name"}, map[string]any{})
	if len(contacts) != 1 || contacts[0].To == nil || contacts[0].To.Name != "Jane Doe" {
		t.Errorf("ACME GmbH's contacts: %+v, want Jane Doe", contacts)
	}
}
