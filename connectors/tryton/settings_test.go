package tryton

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/connector"
)

func TestRegisterValidatesSettings(t *testing.T) {
	r := connector.NewRegistry()
	if err := Register(r); err != nil {
		t.Fatalf("Register: %v", err)
	}
	minimal := func(extra map[string]any) map[string]any {
		m := map[string]any{"url": "https://erp.example.com", "database": "erp", "user": "syncline", "password": "pw-Secret-1"}
		for k, v := range extra {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	tests := []struct {
		name     string
		settings map[string]any
		want     string // empty: valid
	}{
		{"minimal", minimal(nil), ""},
		{"everything", minimal(map[string]any{"company": "Shop GmbH", "warehouse": "WH2", "account_category": "Goods",
			"price_includes_tax": true, "manage_stock": false, "available": "forecast", "timeout": "5s"}), ""},
		{"missing password", minimal(map[string]any{"password": nil}), "settings.password: required"},
		{"typo", minimal(map[string]any{"databse": "erp"}), "settings.databse: unknown setting"},
		{"url without scheme", minimal(map[string]any{"url": "erp.example.com"}), "settings.url:"},
		{"database with a slash", minimal(map[string]any{"database": "erp/x"}), "settings.database:"},
		{"unknown formula", minimal(map[string]any{"available": "on_hand_plus_hope"}), `settings.available: "on_hand_plus_hope" is not one of`},
		{"manage_stock as text", minimal(map[string]any{"manage_stock": "yes"}), "settings.manage_stock: must be true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.ValidateSettings(Type, tt.settings)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ValidateSettings: %v", err)
				}
				if _, ok := got["timeout"].(time.Duration); !ok {
					t.Fatalf("settings %v lack the timeout", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ValidateSettings error = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "pw-Secret-1") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

func TestDestinationsAndEntities(t *testing.T) {
	r := connector.NewRegistry()
	if err := Register(r); err != nil {
		t.Fatal(err)
	}
	for url, want := range map[string]connector.Destination{
		"https://erp.example.com":            {Setting: "settings.url", Host: "erp.example.com", Port: 443},
		"http://erp.example.com":             {Setting: "settings.url", Host: "erp.example.com", Port: 80},
		"http://10.0.0.5:8000/tryton":        {Setting: "settings.url", Host: "10.0.0.5", Port: 8000},
		"http://[fd00::1]:8000":              {Setting: "settings.url", Host: "fd00::1", Port: 8000},
		"https://erp.example.com:8443/base/": {Setting: "settings.url", Host: "erp.example.com", Port: 8443},
	} {
		d, err := r.Destinations(Type, map[string]any{"url": url, "database": "erp", "user": "u", "password": "p"})
		if err != nil || len(d) != 1 || d[0] != want {
			t.Errorf("Destinations(%s) = %+v, %v, want %+v", url, d, err, want)
		}
	}
	spec, _ := r.Spec(Type)
	caps, err := spec.Entities(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		EntityCustomer: {connector.FieldExternalRef, FieldEmail, FieldName},
		EntityProduct:  {connector.FieldExternalRef, FieldSKU},
		EntityCategory: {connector.FieldExternalRef, FieldName},
		EntityStock:    {connector.FieldExternalRef, FieldSKU},
		EntityOrder:    {connector.FieldExternalRef, FieldNumber},
		EntityInvoice:  {connector.FieldExternalRef, FieldNumber},
		EntityPayment:  {connector.FieldExternalRef},

		EntityGoodsReceipt:   {connector.FieldExternalRef, FieldNumber},
		EntityOrderReturn:    {connector.FieldExternalRef, FieldNumber},
		EntityInventoryCount: {connector.FieldExternalRef, FieldNumber},
		EntityWriteOff:       {connector.FieldExternalRef, FieldNumber},
	}
	// The states of each stock document, the default first.
	stockStates := map[string][]string{
		EntityGoodsReceipt:   {StateDraft, StateReceived, StateDone},
		EntityOrderReturn:    {StateDraft, StateReceived, StateDone},
		EntityInventoryCount: {StateDraft, StateDone},
		EntityWriteOff:       {StateDraft, StateDone},
	}
	for _, c := range caps {
		for _, f := range want[c.Entity] {
			if !c.CanFind(f) {
				t.Errorf("%s cannot be found by %s", c.Entity, f)
			}
		}
		// A payment is booked once and then belongs to the accounting: it is neither
		// read back nor changed.
		payment := c.Entity == EntityPayment
		if c.Read == payment || !c.Create || c.Update == payment || !c.Canonical {
			t.Errorf("%s capabilities = %+v", c.Entity, c)
		}
		if c.Entity == EntityOrder && (c.Delete || !slices.Equal(c.States, []string{StateDraft, StateQuotation, StateConfirmed}) || !slices.Equal(c.Types, []string{TypeOrder})) {
			t.Errorf("order capabilities = %+v, want no deletes, the states draft (the default), quotation and confirmed, and the type order", c)
		}
		if c.Entity == EntityInvoice && (len(c.States) != 3 || c.States[0] != InvoiceDraft || c.Delete) {
			t.Errorf("invoice capabilities = %+v, want the states draft (the default), validated and posted, and no delete", c)
		}
		if states, ok := stockStates[c.Entity]; ok && (c.Delete || !slices.Equal(c.States, states) || len(c.Types) > 0) {
			t.Errorf("%s capabilities = %+v, want no deletes and the states %v", c.Entity, c, states)
		}
		delete(want, c.Entity)
	}
	if len(want) != 0 {
		t.Errorf("entities not declared: %v", want)
	}
}

// TestOpenRefusesWhatEgressForbids: a URL the egress policy does not allow is refused
// before any connection, naming the setting.
func TestOpenRefusesWhatEgressForbids(t *testing.T) {
	eg, err := connector.NewEgress(connector.EgressConfig{Allow: []string{"10.0.0.0/8"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), baseSettings("http://127.0.0.1:1", "erp"), connector.Env{Tenant: "acme", Egress: eg})
	if err == nil || !strings.Contains(err.Error(), "settings.url") {
		t.Fatalf("Open = %v, want a refusal naming settings.url", err)
	}
}

// TestUnknownEntityAndField: an entity the target does not serve fails the call, naming
// those it serves; a lookup by a field it cannot find by says which it can; a record's
// fields of the wrong type or with values Tryton lacks are its refusal.
func TestUnknownEntityAndField(t *testing.T) {
	tg, _ := open(t, nil)
	served := "customer, product, category, stock, order, invoice, payment, goods-receipt, order-return, inventory-count and write-off"
	if _, err := tg.Write(context.Background(), "cash-document", []connector.Write{create("g-1", `{}`)}); err == nil || !strings.Contains(err.Error(), served) {
		t.Fatalf("Write(cash-document) = %v", err)
	}
	if _, err := tg.Find(context.Background(), "cash-document", connector.FieldExternalRef, []string{"g-1"}); err == nil || !strings.Contains(err.Error(), served) {
		t.Fatalf("Find(cash-document) = %v", err)
	}
	if _, err := tg.Find(context.Background(), EntityProduct, "ean", []string{"4006381333931"}); err == nil || !strings.Contains(err.Error(), "external_ref or sku") {
		t.Fatalf("Find(product, ean) = %v", err)
	}
	res, err := tg.Write(context.Background(), EntityCustomer, []connector.Write{create("c-1", `{"email":"a@example.com","name":"A","nickname":"x"}`)})
	if err != nil || res[0].Err != nil {
		t.Fatalf("a field the canonical customer does not name is left alone: %v %+v", err, res)
	}
	res, err = tg.Write(context.Background(), EntityCustomer, []connector.Write{create("c-3", `{"email":"a@example.com","name":["A"]}`)})
	if err != nil || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "canonical shape") {
		t.Fatalf("a name that is not a string: %v %+v", err, res)
	}
	res, err = tg.Write(context.Background(), EntityCustomer, []connector.Write{create("c-2", `{"email":"a@example.com","name":"A","billing_address":{"street":"S","postcode":"1","city":"C","country":"ZZ"}}`)})
	if err != nil || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), `country with the code "ZZ"`) {
		t.Fatalf("an unknown country: %v %+v", err, res)
	}
}

// TestCompanySetting: the company is found by name, and a name Tryton does not have is a
// settings error naming settings.company.
func TestCompanySetting(t *testing.T) {
	tg, _ := open(t, func(s *Settings) { s.Company = "Acceptance Test Shop GmbH" })
	if tg.company != 1 {
		t.Fatalf("company = %d, want 1", tg.company)
	}
	db := srv.NewDatabase(t)
	s := baseSettings(srv.URL, db.Name)
	s.Company = "Nope AG"
	_, err := Open(context.Background(), s, testEnv(t))
	if err == nil || !strings.Contains(err.Error(), `settings.company: Tryton has 0 companies named "Nope AG"`) {
		t.Fatalf("Open with an unknown company = %v", err)
	}
}
