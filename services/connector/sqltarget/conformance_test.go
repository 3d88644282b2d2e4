package sqltarget_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/syncline/syncline/pkg/connector/connectortest"
	"github.com/syncline/syncline/services/connector/sqltarget"
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
					return connectortest.Fixture{
						Target:  target,
						Reader:  sqlReader{db: b.db(t, dsn), table: quoted, key: `"external_ref"`},
						Refused: json.RawMessage(`{"name": "x", "` + strings.Repeat("f", 64) + `": 1}`),
					}
				})
			})
			t.Run("existing table", func(t *testing.T) {
				connectortest.RunTarget(t, func(t *testing.T) connectortest.Fixture {
					dsn := b.newDSN(t)
					db := b.db(t, dsn)
					exec(t, db, `CREATE TABLE customer_list (id INTEGER, ref TEXT NOT NULL UNIQUE, name TEXT NOT NULL, city TEXT, source_version BIGINT)`)
					return connectortest.Fixture{
						Target:  open(t, sqltarget.Settings{Driver: b.driver, DSN: dsn, Table: "customer_list", KeyColumn: "ref"}),
						Reader:  sqlReader{db: db, table: "customer_list", key: "ref"},
						Refused: json.RawMessage(`{"name": null, "city": "Nowhere"}`),
					}
				})
			})
		})
	}
}
