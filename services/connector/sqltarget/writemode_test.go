package sqltarget_test

import (
	"testing"

	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/services/connector/sqltarget"
)

// TestWriteModes: per field, always overwrites, create_only is written once,
// update_only never on create, and if_empty only over a missing or empty
// value, so that data enriched in the target survives.
func TestWriteModes(t *testing.T) {
	modes := map[string]connector.WriteMode{
		"name":        connector.WriteAlways,
		"created_via": connector.WriteCreateOnly,
		"price":       connector.WriteUpdateOnly,
		"description": connector.WriteIfEmpty,
	}
	rec := func(version int64, create bool, payload string) connector.Record {
		r := upsert("p1", version, payload)
		r.Create, r.WriteModes = create, modes
		return r
	}
	for _, b := range backends() {
		t.Run(b.driver, func(t *testing.T) {
			dsn := b.newDSN(t)
			db := b.db(t, dsn)
			exec(t, db, `CREATE TABLE products (external_ref TEXT PRIMARY KEY, name TEXT, created_via TEXT, price NUMERIC, description TEXT)`)
			target := open(t, sqltarget.Settings{Driver: b.driver, DSN: dsn, Table: "products"})
			reader := sqlReader{db: db, table: "products", key: "external_ref"}

			mustPush(t, target, rec(1, true, `{"name": "Cup", "created_via": "shop", "price": 5, "description": ""}`))
			got := reader.row(t, "p1")
			if got["name"] != "Cup" || got["created_via"] != "shop" || got["price"] != "" || got["description"] != "" {
				t.Fatalf("after create: %v; want name and created_via written, price not (update_only)", got)
			}
			// The target enriches the description; the next update must not overwrite it.
			exec(t, db, `UPDATE products SET description = 'Hand-made porcelain' WHERE external_ref = 'p1'`)
			mustPush(t, target, rec(2, false, `{"name": "Cup, white", "created_via": "api", "price": 6, "description": "cup"}`))
			got = reader.row(t, "p1")
			want := map[string]string{"name": "Cup, white", "created_via": "shop", "price": "6", "description": "Hand-made porcelain"}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("after update: %s = %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
			// An emptied value is filled again.
			exec(t, db, `UPDATE products SET description = NULL WHERE external_ref = 'p1'`)
			mustPush(t, target, rec(3, false, `{"name": "Cup, white", "description": "cup"}`))
			if got := reader.row(t, "p1"); got["description"] != "cup" {
				t.Errorf("if_empty over NULL: description = %q, want cup", got["description"])
			}
		})
	}
}

func mustPush(t *testing.T, target *sqltarget.Target, records ...connector.Record) {
	t.Helper()
	for i, r := range push(t, target, records...) {
		if r.Err != nil {
			t.Fatalf("record %d: %v", i, r.Err)
		}
	}
}
