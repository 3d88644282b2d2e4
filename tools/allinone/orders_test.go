package allinone_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/syncline/syncline/connectors/rest/jsonservertest"
	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/natstest"
	"github.com/syncline/syncline/pkg/pgtest"
)

// erpResources are a tenant whose webshop's orders go to an ERP's HTTP API (json-server) that
// takes customers, products and orders in their canonical shapes, with the default order
// mapping and the order recipe.
func erpResources(t *testing.T, erpURL string) []*controlplanev1.Resource {
	return []*controlplanev1.Resource{
		resourceOf(t, "Tenant", "", "acme", map[string]any{}),
		resourceOf(t, "Integrator", "acme", "shop-to-erp", map[string]any{}),
		resourceOf(t, "Endpoint", "acme", "shop", map[string]any{"type": "nats", "description": "webshop"}),
		resourceOf(t, "Endpoint", "acme", "erp", map[string]any{"type": "rest", "description": "the ERP's API", "settings": map[string]any{
			"base_url": erpURL, "timeout": "5s",
			"entities": map[string]any{
				"customer": map[string]any{"path": "/customers", "canonical": true, "lookup": map[string]any{"email": "email"}},
				"product":  map[string]any{"path": "/products", "canonical": true, "lookup": map[string]any{"sku": "sku"}},
				"order": map[string]any{"path": "/orders", "canonical": true, "lookup": map[string]any{"number": "number"},
					"refs_field": "refs", "state_field": "state", "states": []any{"open", "confirmed"}},
			},
		}}),
		resourceOf(t, "Flow", "acme", "orders", map[string]any{"integrator": "shop-to-erp", "source": "shop", "target": "erp",
			"entity": "order", "document": map[string]any{"state": "confirmed"}}),
	}
}

// shopOrder is an order as a WooCommerce-like shop sends it.
func shopOrder(key string, version int64, email string, skus ...string) ingest.Change {
	var lines []string
	for _, sku := range skus {
		lines = append(lines, fmt.Sprintf(`{"sku":%q,"name":"Item %s","quantity":1,"price":"9.90"}`, sku, sku))
	}
	return ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: key, Version: version, Payload: fmt.Appendf(nil,
		`{"number":"SO-%s","status":"processing","currency":"EUR",
		  "billing":{"first_name":"Buyer","last_name":%q,"address_1":"Main St 1","postcode":"10117","city":"Berlin","country":"DE","email":%q},
		  "line_items":[%s]}`, key, key, email, strings.Join(lines, ","))}
}

// TestOrdersIntoAnERP runs a webshop's orders through the whole pipeline, on two replicas of
// every service, into an ERP's API, and reads customers and orders back over its own API:
//
//   - orders of one new customer published together, on keys of different partitions and
//     pushed by both replicas, make one customer;
//   - an order with a SKU the ERP lacks fails, named in the API log, and writes nothing;
//     once the product is in the ERP, its dead letter replayed writes it;
//   - the same order again (a later version of it) is kept as it is under the skip policy;
//   - an ERP that fails between the customer and the order (the order's POST answers 503)
//     pauses the flow, and once it works, one customer and one order are there.
func TestOrdersIntoAnERP(t *testing.T) {
	peer, err := jsonservertest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(peer.Stop)
	peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{
		"customers": nil, "orders": nil,
		"products": {{"id": 1, "sku": "TS-1", "name": "T-shirt"}, {"id": 2, "sku": "CUP", "name": "Cup"}},
	},
		// Customers are made slowly, so that pushes of one new customer's orders on
		// both replicas overlap between the lookup and the create.
		Slow: map[string]int{"POST /customers": 300}})
	u, err := url.Parse(peer.URL)
	if err != nil {
		t.Fatal(err)
	}
	s := natstest.Run(t)
	dir := t.TempDir()
	o := options{natsURL: s.ClientURL(), replicated: true, storeURL: pgtest.NewDatabase(t), driver: "postgres", dsn: pgtest.NewDatabase(t), allow: []string{u.Host}}
	oa, ob := o, o
	oa.dir, ob.dir = dir+"/a", dir+"/b"
	a, b := start(t, oa), start(t, ob)
	if _, err := a.resource.Apply(t.Context(), &controlplanev1.ApplyRequest{Resources: erpResources(t, peer.URL)}); err != nil {
		t.Fatalf("applying: %v", err)
	}

	customersOf := func() map[string]int {
		n := map[string]int{}
		for _, c := range peer.Items(t, jsonservertest.Auth{}, "customers", nil) {
			n[fmt.Sprint(c["email"])]++
		}
		return n
	}
	// Rounds of orders of new customers, each customer's orders published together on
	// several keys, until both replicas have pushed orders.
	published := 0
	for round := 0; ; round++ {
		var changes []ingest.Change
		for c := range 3 {
			email := fmt.Sprintf("Buyer-%d-%d@Example.com", round, c)
			for k := range 8 {
				changes = append(changes, shopOrder(fmt.Sprintf("r%d-c%d-o%d", round, c, k), 1, email, "TS-1", "CUP"))
			}
		}
		a.publish(changes...)
		published += len(changes)
		eventually(t, time.Minute, func() string {
			if n := len(peer.Items(t, jsonservertest.Auth{}, "orders", nil)); n != published {
				return fmt.Sprintf("the ERP holds %d orders, want %d", n, published)
			}
			return ""
		})
		if finished(t, a, "connector") > 0 && finished(t, b, "connector") > 0 {
			break
		}
		if round == 20 {
			t.Fatalf("after %d rounds one replica still pushed nothing", round+1)
		}
	}
	for email, n := range customersOf() {
		if n != 1 {
			t.Errorf("the ERP holds %d customers %s, want 1", n, email)
		}
	}
	if len(customersOf()) != published/8 {
		t.Errorf("the ERP holds %d customers, want %d", len(customersOf()), published/8)
	}

	// A missing SKU: the order fails naming it, and neither it nor its new customer is written.
	a.publish(shopOrder("bad-1", 1, "nobody@example.com", "TS-1", "GONE-7"))
	// The first order again, changed: the ERP keeps it (the skip policy of orders).
	a.publish(shopOrder("r0-c0-o0", 2, "buyer-0-0@example.com", "CUP"))
	want := map[string]string{"bad-1": "failed unknown_product", "r0-c0-o0": "skipped duplicate"}
	eventually(t, time.Minute, func() string {
		for key, w := range want {
			recs := a.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: key})
			if len(recs) == 0 {
				return "no log record of " + key + " yet"
			}
			last := recs[0]
			for _, r := range recs {
				if r.OccurredAt.AsTime().After(last.OccurredAt.AsTime()) {
					last = r
				}
			}
			if got := last.Action + " " + last.Code; got != w {
				return fmt.Sprintf("%s: %s (%s), want %s", key, got, last.Reason, w)
			}
			if key == "bad-1" && !strings.Contains(last.Reason, "no product with SKU GONE-7") {
				return fmt.Sprintf("bad-1's reason %q does not name the SKU", last.Reason)
			}
		}
		return ""
	})
	if n := customersOf()["nobody@example.com"]; n != 0 {
		t.Errorf("the failed order made its customer")
	}
	if orders := peer.Items(t, jsonservertest.Auth{}, "orders", url.Values{"number": {"SO-bad-1"}}); len(orders) != 0 {
		t.Errorf("the failed order is in the ERP: %v", orders)
	}
	if orders := peer.Items(t, jsonservertest.Auth{}, "orders", url.Values{"number": {"SO-r0-c0-o0"}}); len(orders) != 1 {
		t.Errorf("the first order is held %d times", len(orders))
	}

	// The product is made in the ERP, and the order's dead letter replayed: it is written
	// now, with its customer, though its content did not change.
	peer.Add(t, jsonservertest.Auth{}, "products", map[string]any{"sku": "GONE-7", "name": "Back in stock"})
	letters := eventlogv1connect.NewDeadLetterServiceClient(http.DefaultClient, a.in.APIURL(), connect.WithInterceptors(auth.Bearer(a.in.AdminToken())))
	rep, err := letters.ReplayDeadLetters(t.Context(), &eventlogv1.ReplayDeadLettersRequest{Tenant: "acme", Filter: &eventlogv1.DeadLetterFilter{Stage: "connector", Code: "unknown_product"}})
	if err != nil || len(rep.Replayed) != 1 {
		t.Fatalf("replaying the order that failed: %v (%v)", rep, err)
	}
	eventually(t, time.Minute, func() string {
		if n := len(peer.Items(t, jsonservertest.Auth{}, "orders", url.Values{"number": {"SO-bad-1"}})); n != 1 {
			return fmt.Sprintf("after its replay the ERP holds order bad-1 %d times", n)
		}
		if n := customersOf()["nobody@example.com"]; n != 1 {
			return fmt.Sprintf("after its replay the ERP holds %d customers of order bad-1", n)
		}
		return ""
	})

	// The ERP fails the next order's POST after its customer was made: the flow pauses,
	// probes, and the order lands once.
	peer.Reset(t, jsonservertest.State{
		DB: map[string][]map[string]any{
			"customers": peer.Items(t, jsonservertest.Auth{}, "customers", nil), "orders": peer.Items(t, jsonservertest.Auth{}, "orders", nil),
			"products": peer.Items(t, jsonservertest.Auth{}, "products", nil),
		},
		Trouble: jsonservertest.Trouble{Status: 503, Count: 3, Method: "POST", Path: "/orders"},
	})
	a.publish(shopOrder("fault-1", 1, "fault@example.com", "TS-1"))
	eventually(t, time.Minute, func() string {
		if n := len(peer.Items(t, jsonservertest.Auth{}, "orders", url.Values{"number": {"SO-fault-1"}})); n != 1 {
			return fmt.Sprintf("the ERP holds order fault-1 %d times", n)
		}
		return ""
	})
	if n := customersOf()["fault@example.com"]; n != 1 {
		t.Errorf("the ERP holds %d customers fault@example.com, want 1", n)
	}
}
