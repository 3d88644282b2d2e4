package sql_test

import (
	"encoding/json"
	"strings"
	"testing"

	sqltarget "github.com/syncline/syncline/connectors/sql"
	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/connector/connectortest"
)

// TestConformance runs the target suite against both drivers, once on a table the target
// creates and evolves, once on a table the user made (no synced_at column, a NOT NULL
// constraint that refuses records in the database rather than in Go).
func TestConformance(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.driver, func(t *testing.T) {
			t.Run("created table", func(t *testing.T) {
				connectortest.RunTarget(t, func(t *testing.T) connectortest.Fixture {
					dsn := b.newDSN(t)
					table, quoted := "customers", `"customers"`
					if b.driver == sqltarget.DriverPostgres {
						table, quoted = "public.customers", `"public"."customers"`
					}
					target := open(t, sqltarget.Settings{Driver: b.driver, DSN: dsn, Table: table, CreateTable: true})
					return fixture(target, sqlReader{db: b.db(t, dsn), table: quoted, key: `"external_ref"`},
						json.RawMessage(`{"name": "x", "`+strings.Repeat("f", 64)+`": 1}`))
				})
			})
			t.Run("existing table", func(t *testing.T) {
				connectortest.RunTarget(t, func(t *testing.T) connectortest.Fixture {
					dsn := b.newDSN(t)
					db := b.db(t, dsn)
					exec(t, db, `CREATE TABLE customer_list (id INTEGER, ref TEXT NOT NULL UNIQUE, name TEXT NOT NULL, city TEXT, source_version BIGINT)`)
					return fixture(open(t, sqltarget.Settings{Driver: b.driver, DSN: dsn, Table: "customer_list", KeyColumn: "ref"}),
						sqlReader{db: db, table: "customer_list", key: "ref"}, json.RawMessage(`{"name": null, "city": "Nowhere"}`))
				})
			})
		})
	}
}

// fixture is the suite's view of a sql target: customers with a name and a city, as the
// spec declares them.
func fixture(target *sqltarget.Target, r sqlReader, refused json.RawMessage) connectortest.Fixture {
	return connectortest.Fixture{
		Target: target, Reader: r, Entity: "customer", KeyIsID: true,
		Caps:   connector.Capabilities{Entity: "customer", FindBy: []string{connector.FieldExternalRef}, Read: true, Create: true, Update: true, Delete: true},
		Fields: [2]string{"name", "city"},
		Payload: func(_, a, b string) json.RawMessage {
			p, _ := json.Marshal(map[string]string{"name": a, "city": b}) // strings always encode
			return p
		},
		Refused: refused,
	}
}
