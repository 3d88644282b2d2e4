package tryton

import (
	"strings"
	"testing"
)

// TestCustomerFindByName: customers are found by name case-insensitively, company parties
// before persons of the same name, and a LIKE pattern matches nothing.
func TestCustomerFindByName(t *testing.T) {
	tg, _ := open(t, nil)
	person := write(t, tg, EntityCustomer, create("c-1", `{"email":"acme@example.com","name":"Acme GmbH"}`))
	company := write(t, tg, EntityCustomer, create("c-2", `{"email":"jane@acme.example","name":"Jane Doe","company":"ACME GmbH"}`))
	f := find(t, tg, EntityCustomer, FieldName, "acme gmbh")
	if len(f) != 2 || f[0].ID != company || f[1].ID != person || f[0].Value != "acme gmbh" {
		t.Fatalf("find by name = %+v, want the company %s, then the person %s", f, company, person)
	}
	if !strings.Contains(string(f[0].Fields), `"company":"ACME GmbH"`) {
		t.Errorf("the company read back as %s", f[0].Fields)
	}
	if f := find(t, tg, EntityCustomer, FieldName, "ACME_GmbH", "Nobody"); len(f) != 0 {
		t.Fatalf("find by a pattern and an unknown name = %+v, want nothing", f)
	}
}
