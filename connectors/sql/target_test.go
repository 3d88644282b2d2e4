package sql_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	sqltarget "github.com/syncline/syncline/connectors/sql"
	"github.com/syncline/syncline/pkg/connector"
)

func TestCreateTableAddsAColumnPerNewField(t *testing.T) {
	// wantType is the column type each driver gives a field, from its first non-null value.
	tests := []struct {
		field, value string
		want         string // as read back
		wantType     map[string]string
	}{
		{"name", `"Ada"`, "Ada", map[string]string{"postgres": "text", "sqlite": ""}},
		{"age", `36`, "36", map[string]string{"postgres": "numeric", "sqlite": ""}},
		{"balance", `-12.5`, "-12.5", map[string]string{"postgres": "numeric", "sqlite": ""}},
		{"vip", `true`, "true", map[string]string{"postgres": "boolean", "sqlite": ""}},
		{"address", `{"city": "London"}`, `{"city": "London"}`, map[string]string{"postgres": "jsonb", "sqlite": ""}},
		{"tags", `["a", "b"]`, `["a", "b"]`, map[string]string{"postgres": "jsonb", "sqlite": ""}},
		{"note", `null`, "", map[string]string{"postgres": "text", "sqlite": ""}},
	}
	for _, b := range backends() {
		t.Run(b.driver, func(t *testing.T) {
			dsn := b.newDSN(t)
			db := b.db(t, dsn)
			target := open(t, sqltarget.Settings{Driver: b.driver, DSN: dsn, Table: "contacts", CreateTable: true})
			reader := sqlReader{db: db, table: "contacts", key: "external_ref"}

			// The first push brings one field; the second all of them, so the columns are
			// added to a table that already has rows and a cached column list.
			push(t, target, upsert("c1", 1, `{"name": "Ada"}`))
			var fields []string
			for _, tt := range tests {
				fields = append(fields, `"`+tt.field+`": `+tt.value)
			}
			results := push(t, target, upsert("c1", 2, "{"+strings.Join(fields, ", ")+"}"), upsert("c2", 1, `{"note": "set later"}`))
			for i, res := range results {
				if res.Err != nil {
					t.Fatalf("record %d: %v", i, res.Err)
				}
			}

			types := columnTypes(t, b.driver, db, "contacts")
			got := reader.row(t, "c1")
			for _, tt := range tests {
				t.Run(tt.field, func(t *testing.T) {
					typ, ok := types[tt.field]
					if !ok {
						t.Fatalf("no column %q; columns are %v", tt.field, types)
					}
					if want := tt.wantType[b.driver]; typ != want {
						t.Errorf("column %q has type %q, want %q", tt.field, typ, want)
					}
					want := tt.want
					if b.driver == sqltarget.DriverSQLite && tt.field == "vip" {
						want = "1" // SQLite has no boolean type
					}
					if b.driver == sqltarget.DriverSQLite && (strings.HasPrefix(want, "{") || strings.HasPrefix(want, "[")) {
						want = strings.ReplaceAll(want, " ", "") // stored as compact JSON text
					}
					if got[tt.field] != want {
						t.Errorf("%s = %q, want %q", tt.field, got[tt.field], want)
					}
				})
			}
			for _, own := range []string{"source_version", "synced_at"} {
				if got[own] == "" {
					t.Errorf("%s is empty, want it set by the target", own)
				}
			}
			if note := reader.row(t, "c2")["note"]; note != "set later" {
				t.Errorf("c2 note = %q, want %q in the column first created for a null", note, "set later")
			}
		})
	}
}

func TestOlderVersionNeverOverwritesNewer(t *testing.T) {
	tests := []struct {
		name    string
		batches [][]connector.Write
		want    string
	}{
		{"an older version in a later push is ignored", [][]connector.Write{
			{upsert("c1", 2, `{"name": "new"}`)},
			{upsert("c1", 1, `{"name": "old"}`)},
		}, "new"},
		{"an older version later in one batch is ignored", [][]connector.Write{
			{upsert("c1", 3, `{"name": "new"}`), upsert("c1", 2, `{"name": "old"}`)},
		}, "new"},
		{"the same version overwrites, so a retry rewrites", [][]connector.Write{
			{upsert("c1", 2, `{"name": "first"}`)},
			{upsert("c1", 2, `{"name": "again"}`)},
		}, "again"},
		{"a newer version overwrites", [][]connector.Write{
			{upsert("c1", 2, `{"name": "old"}`)},
			{upsert("c1", 5, `{"name": "new"}`)},
		}, "new"},
	}
	for _, b := range backends() {
		t.Run(b.driver, func(t *testing.T) {
			dsn := b.newDSN(t)
			db := b.db(t, dsn)
			for i, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					table := "versions_" + string(rune('a'+i))
					target := open(t, sqltarget.Settings{Driver: b.driver, DSN: dsn, Table: table, CreateTable: true})
					for _, batch := range tt.batches {
						for j, res := range push(t, target, batch...) {
							if res.Err != nil {
								t.Fatalf("record %d: %v", j, res.Err)
							}
						}
					}
					if got := (sqlReader{db: db, table: table, key: "external_ref"}).row(t, "c1")["name"]; got != tt.want {
						t.Fatalf("name = %q, want %q", got, tt.want)
					}
				})
			}
		})
	}
}

func TestTableWithoutSourceVersionTakesEveryWrite(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.driver, func(t *testing.T) {
			dsn := b.newDSN(t)
			db := b.db(t, dsn)
			exec(t, db, `CREATE TABLE plain (external_ref TEXT PRIMARY KEY, name TEXT)`)
			target := open(t, sqltarget.Settings{Driver: b.driver, DSN: dsn, Table: "plain"})
			push(t, target, upsert("c1", 2, `{"name": "new"}`))
			push(t, target, upsert("c1", 1, `{"name": "old"}`))
			if got := (sqlReader{db: db, table: "plain", key: "external_ref"}).row(t, "c1")["name"]; got != "old" {
				t.Fatalf("name = %q, want %q: with no source_version column the last write wins", got, "old")
			}
		})
	}
}

func TestFieldWithoutColumn(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.driver, func(t *testing.T) {
			dsn := b.newDSN(t)
			db := b.db(t, dsn)
			exec(t, db, `CREATE TABLE products (external_ref TEXT PRIMARY KEY, name TEXT, source_version BIGINT)`)
			target := open(t, sqltarget.Settings{Driver: b.driver, DSN: dsn, Table: "products"})
			reader := sqlReader{db: db, table: "products", key: "external_ref"}

			results := push(t, target,
				upsert("p1", 1, `{"name": "Chair"}`),
				upsert("p2", 1, `{"name": "Table", "colour": "oak"}`),
			)
			if results[0].Err != nil {
				t.Fatalf("p1: %v", results[0].Err)
			}
			err := results[1].Err
			if err == nil {
				t.Fatal("p2 with field colour and no column succeeded, want a per-record error")
			}
			for _, want := range []string{`record "p2"`, `field "colour"`, `table "products"`, "settings.create_table: true"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if _, ok, _ := reader.Fields(context.Background(), "", "p2"); ok {
				t.Error("p2 was written, want it refused")
			}

			// Once the column exists, the cached column list is read again and the
			// replayed record lands.
			exec(t, db, `ALTER TABLE products ADD COLUMN colour TEXT`)
			if res := push(t, target, upsert("p2", 1, `{"name": "Table", "colour": "oak"}`)); res[0].Err != nil {
				t.Fatalf("replaying p2 after adding the column: %v", res[0].Err)
			}
			if got := reader.row(t, "p2")["colour"]; got != "oak" {
				t.Fatalf("p2 colour = %q, want oak", got)
			}
		})
	}
}

func TestRecordsRefusedOnTheirOwn(t *testing.T) {
	tests := []struct {
		name    string
		record  connector.Write
		wantErr string
	}{
		{"empty key", upsert("", 1, `{"name": "x"}`), "empty key"},
		{"unknown operation", connector.Write{Key: "k", Op: "merge", Payload: []byte(`{}`)}, `write "merge"`},
		{"payload not an object", upsert("k", 1, `["x"]`), "not a JSON object"},
		{"null payload", upsert("k", 1, `null`), "not a JSON object"},
		{"field named like the key column", upsert("k", 1, `{"external_ref": "x"}`), "is the key column"},
		{"field named like a column the target fills", upsert("k", 1, `{"synced_at": "x"}`), "fills itself"},
		{"field name too long", upsert("k", 1, `{"`+strings.Repeat("x", 64)+`": 1}`), "longer than 63 bytes"},
		{"constraint in the database", upsert("k", 1, `{"name": "x", "qty": -1}`), "the database refused it"},
		{"value that does not fit the column", upsert("k", 1, `{"name": "x", "qty": "many"}`), ""},
	}
	for _, b := range backends() {
		t.Run(b.driver, func(t *testing.T) {
			dsn := b.newDSN(t)
			db := b.db(t, dsn)
			exec(t, db, `CREATE TABLE stock (external_ref TEXT PRIMARY KEY, name TEXT, qty INTEGER CHECK (qty >= 0), source_version BIGINT)`)
			target := open(t, sqltarget.Settings{Driver: b.driver, DSN: dsn, Table: "stock"})
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if tt.wantErr == "" && b.driver == sqltarget.DriverSQLite {
						// SQLite stores a text in an INTEGER column of a table that is not
						// STRICT, so there is nothing to refuse.
						tt.wantErr = "-"
					}
					results := push(t, target, upsert("before", 1, `{"name": "a"}`), tt.record, upsert("after", 1, `{"name": "b"}`))
					for _, i := range []int{0, 2} {
						if results[i].Err != nil {
							t.Errorf("record %d next to the refused one: %v", i, results[i].Err)
						}
					}
					switch err := results[1].Err; {
					case tt.wantErr == "-":
						if err != nil {
							t.Errorf("record: %v", err)
						}
					case err == nil:
						t.Error("record succeeded, want it refused")
					case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
						t.Errorf("error %q lacks %q", err, tt.wantErr)
					case strings.Contains(err.Error(), "many"):
						t.Errorf("error %q quotes the record's value", err)
					}
				})
			}
		})
	}
}

// TestRefusalKeepsBatchOrder has the refused record between two others of the same key, so
// that PostgreSQL writes it in a statement of its own and must find it after the whole batch
// failed, still applying the key's records in order. The last record sets one field only, and
// the row keeps the others.
func TestRefusalKeepsBatchOrder(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.driver, func(t *testing.T) {
			dsn := b.newDSN(t)
			db := b.db(t, dsn)
			exec(t, db, `CREATE TABLE people (external_ref TEXT PRIMARY KEY, name TEXT NOT NULL, city TEXT, source_version BIGINT)`)
			target := open(t, sqltarget.Settings{Driver: b.driver, DSN: dsn, Table: "people"})
			results := push(t, target,
				upsert("c1", 1, `{"name": "Ada", "city": "London"}`),
				upsert("c2", 1, `{"name": "Alan", "city": "Wilmslow"}`),
				upsert("c1", 2, `{"name": null, "city": "Paris"}`),
				upsert("c3", 1, `{"name": "Grace", "city": "Arlington"}`),
				upsert("c1", 3, `{"name": "Ada", "city": "Rome"}`),
				upsert("c2", 2, `{"name": "Alan T."}`),
			)
			for i, res := range results {
				if (res.Err != nil) != (i == 2) {
					t.Errorf("record %d: error %v, want one only for record 2", i, res.Err)
				}
			}
			reader := sqlReader{db: db, table: "people", key: "external_ref"}
			for key, want := range map[string]string{"c1": "Ada Rome", "c2": "Alan T. Wilmslow", "c3": "Grace Arlington"} {
				row := reader.row(t, key)
				if got := row["name"] + " " + row["city"]; got != want {
					t.Errorf("%s = %q, want %q", key, got, want)
				}
			}
		})
	}
}

func TestKeysAndValuesRoundTrip(t *testing.T) {
	keys := []string{`quote " and backslash \`, "new\nline", "ünïcødé ✓", "tab\tkey", "'; DROP TABLE x; --"}
	for _, b := range backends() {
		t.Run(b.driver, func(t *testing.T) {
			dsn := b.newDSN(t)
			db := b.db(t, dsn)
			target := open(t, sqltarget.Settings{Driver: b.driver, DSN: dsn, Table: "odd", KeyColumn: "ref", CreateTable: true})
			var records []connector.Write
			for _, k := range keys {
				records = append(records, upsert(k, 1, `{"weird \"field\"": "v", "text": "a \"quoted\" \\ \u00e9 value"}`))
			}
			for i, res := range push(t, target, records...) {
				if res.Err != nil || res.TargetID != keys[i] {
					t.Errorf("record %d: TargetID %q, error %v; want TargetID %q", i, res.TargetID, res.Err, keys[i])
				}
			}
			reader := sqlReader{db: db, table: "odd", key: "ref"}
			for _, k := range keys {
				t.Run(k, func(t *testing.T) {
					row := reader.row(t, k)
					if row["text"] != `a "quoted" \ é value` || row[`weird "field"`] != "v" {
						t.Errorf("row = %v", row)
					}
				})
			}
		})
	}
}

// TestPostgresRefusalsOfTheTable: a record that a trigger of the table refuses, or whose value
// is too big for the table's index, is that record's refusal — its neighbours are written — and
// the trigger's message, which may quote the record, is not repeated.
func TestPostgresRefusalsOfTheTable(t *testing.T) {
	b := backends()[0]
	dsn := b.newDSN(t)
	db := b.db(t, dsn)
	exec(t, db,
		`CREATE TABLE customers (external_ref TEXT PRIMARY KEY, name TEXT, source_version BIGINT)`,
		`CREATE INDEX customers_by_name ON customers (name)`,
		`CREATE FUNCTION check_credit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.name = 'Blocked Buyer' THEN
				RAISE EXCEPTION 'credit blocked for %', NEW.name;
			END IF;
			RETURN NEW;
		END $$`,
		`CREATE TRIGGER customers_credit BEFORE INSERT OR UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION check_credit()`)
	target := open(t, sqltarget.Settings{Driver: b.driver, DSN: dsn, Table: "customers"})
	// Random letters, which compression cannot bring under the index row's limit.
	rnd := rand.New(rand.NewPCG(1, 2))
	huge := make([]byte, 20000)
	for i := range huge {
		huge[i] = byte('a' + rnd.IntN(26))
	}
	results := push(t, target,
		upsert("ok1", 1, `{"name": "Ada"}`),
		upsert("blocked", 1, `{"name": "Blocked Buyer"}`),
		upsert("huge", 1, `{"name": "`+string(huge)+`"}`),
		upsert("ok2", 1, `{"name": "Grace"}`))
	for _, i := range []int{0, 3} {
		if results[i].Err != nil {
			t.Errorf("record %d next to the refused ones: %v", i, results[i].Err)
		}
	}
	for i, want := range map[int]string{1: "SQLSTATE P0001", 2: "SQLSTATE 54000"} {
		err := results[i].Err
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("record %d: error %v, want a refusal with %s", i, err, want)
			continue
		}
		if strings.Contains(err.Error(), "Blocked Buyer") || strings.Contains(err.Error(), string(huge[:40])) {
			t.Errorf("record %d: error %q quotes the record", i, err)
		}
	}
	if err := results[1].Err; err != nil && !strings.Contains(err.Error(), "check_credit") {
		t.Errorf("the trigger's refusal %q does not say where it was raised", err)
	}
}

// TestTargetsCreateOneTableAtOnce: replicas of the connector open the same
// new table at the same moment, each creating it if it is missing; every
// one of them opens and writes its record, whichever created the table.
func TestTargetsCreateOneTableAtOnce(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.driver, func(t *testing.T) {
			dsn := b.newDSN(t)
			settings := sqltarget.Settings{Driver: b.driver, DSN: dsn, Table: "orders", CreateTable: true}
			env := testEnv(t, settings)
			const n = 8
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() {
					target, err := sqltarget.Open(context.Background(), settings, env)
					if err != nil {
						errs[i] = fmt.Errorf("opening: %w", err)
						return
					}
					defer target.Close()
					results, err := target.Write(context.Background(), "order", []connector.Write{upsert(fmt.Sprintf("o%d", i), 1, `{"total": 1}`)})
					if err == nil {
						err = results[0].Err
					}
					errs[i] = err
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("target %d: %v", i, err)
				}
			}
			reader := sqlReader{db: b.db(t, dsn), table: "orders", key: "external_ref"}
			for i := range n {
				reader.row(t, fmt.Sprintf("o%d", i))
			}
		})
	}
}
