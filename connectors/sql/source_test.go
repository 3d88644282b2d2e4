package sql_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	sqltarget "github.com/syncline/syncline/connectors/sql"
	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/connector/connectortest"
	"github.com/syncline/syncline/pkg/mariadbtest"
	"github.com/syncline/syncline/pkg/pgtest"
)

// sourceDB is one fresh database a source reads: the endpoint's driver, URL and password,
// and a connection of the test's own to set rows up with.
type sourceDB struct {
	driver   string
	url      string
	password string
	db       *sql.DB
}

// newSourceDB makes a fresh database of driver for one test.
func newSourceDB(t *testing.T, driver string) sourceDB {
	t.Helper()
	switch driver {
	case sqltarget.DriverPostgres:
		dsn := pgtest.NewDatabase(t)
		return sourceDB{driver: driver, url: dsn, db: backend{driver: driver, readDriver: "pgx"}.db(t, dsn)}
	case sqltarget.DriverMariaDB:
		d := mariadbtest.NewDatabase(t)
		db, err := sql.Open("mysql", d.DSN)
		if err != nil {
			t.Fatalf("opening %s: %v", d.Name, err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return sourceDB{driver: driver, url: d.URL, password: d.Password, db: db}
	}
	t.Fatalf("no source database for driver %s", driver)
	return sourceDB{}
}

// settings are the endpoint's settings polling its entities as polls say; the endpoint's
// table, which every sql endpoint names, is one that no entity reads.
func (d sourceDB) settings(polls map[string]any) map[string]any {
	s := map[string]any{"driver": d.driver, "dsn": d.url, "table": "unused", "poll": polls}
	if d.password != "" {
		s["password"] = d.password
	}
	return s
}

// open opens the source through the registry, as the platform does.
func (d sourceDB) open(t *testing.T, polls map[string]any) connector.Source {
	t.Helper()
	src, err := d.tryOpen(t, polls)
	if err != nil {
		t.Fatalf("OpenSource: %v", err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

func (d sourceDB) tryOpen(t *testing.T, polls map[string]any) (connector.Source, error) {
	t.Helper()
	r := connector.NewRegistry()
	if err := sqltarget.Register(r); err != nil {
		t.Fatalf("Register: %v", err)
	}
	return r.OpenSource(context.Background(), sqltarget.Type, d.settings(polls), testEnv(t, sqltarget.Settings{Driver: d.driver, DSN: d.url}))
}

// sql rewrites a statement written with ? placeholders for the database.
func (d sourceDB) sql(statement string) string {
	if d.driver != sqltarget.DriverPostgres {
		return statement
	}
	var b strings.Builder
	n := 0
	for _, r := range statement {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (d sourceDB) exec(t testing.TB, statement string, args ...any) {
	t.Helper()
	if _, err := d.db.ExecContext(context.Background(), d.sql(statement), args...); err != nil {
		t.Fatalf("%s: %v", statement, err)
	}
}

// sourceCase is one way of keeping a table that a source reads: its DDL, how a change and a
// delete are written, and the entity's poll settings.
type sourceCase struct {
	name   string
	driver string
	// tables are the statements that make the table or view.
	tables []string
	poll   map[string]any
	// put writes key's row with name, changed at at (or by the next sequence number seq).
	put func(t *testing.T, d sourceDB, key, name string, at time.Time, seq int64)
	// del marks key's row deleted at at (or by seq).
	del   func(t *testing.T, d sourceDB, key string, at time.Time, seq int64)
	reset string
}

func sourceCases() []sourceCase {
	return []sourceCase{
		{
			name: "postgres table, timestamptz, boolean tombstone", driver: sqltarget.DriverPostgres,
			tables: []string{`CREATE TABLE items (id TEXT PRIMARY KEY, name TEXT, updated_at TIMESTAMPTZ NOT NULL, deleted BOOLEAN NOT NULL DEFAULT false)`,
				`CREATE INDEX items_changes ON items (updated_at, id)`},
			poll: map[string]any{"table": "public.items", "change_column": "updated_at", "tombstone_column": "deleted", "page_size": 4, "settle": "0s"},
			put: func(t *testing.T, d sourceDB, key, name string, at time.Time, _ int64) {
				d.exec(t, `INSERT INTO items (id, name, updated_at, deleted) VALUES (?, ?, ?, false)
					ON CONFLICT (id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at, deleted = false`, key, name, at)
			},
			del: func(t *testing.T, d sourceDB, key string, at time.Time, _ int64) {
				d.exec(t, `UPDATE items SET deleted = true, updated_at = ? WHERE id = ?`, at, key)
			},
			reset: `DELETE FROM items`,
		},
		{
			name: "postgres view, timestamp, deleted_at", driver: sqltarget.DriverPostgres,
			tables: []string{`CREATE TABLE items_raw (ref TEXT PRIMARY KEY, name TEXT, changed TIMESTAMP NOT NULL, deleted_at TIMESTAMP)`,
				`CREATE VIEW item_changes AS SELECT ref, name, changed, deleted_at FROM items_raw`},
			poll: map[string]any{"table": "item_changes", "key_column": "ref", "change_column": "changed", "tombstone_column": "deleted_at", "page_size": 3, "settle": "1s"},
			put: func(t *testing.T, d sourceDB, key, name string, at time.Time, _ int64) {
				d.exec(t, `INSERT INTO items_raw (ref, name, changed, deleted_at) VALUES (?, ?, ?, NULL)
					ON CONFLICT (ref) DO UPDATE SET name = excluded.name, changed = excluded.changed, deleted_at = NULL`, key, name, at)
			},
			del: func(t *testing.T, d sourceDB, key string, at time.Time, _ int64) {
				d.exec(t, `UPDATE items_raw SET deleted_at = ?, changed = ? WHERE ref = ?`, at, at, key)
			},
			reset: `DELETE FROM items_raw`,
		},
		{
			name: "mariadb table, datetime, tinyint tombstone", driver: sqltarget.DriverMariaDB,
			tables: []string{"CREATE TABLE items (id VARCHAR(20) PRIMARY KEY, name TEXT, updated_at DATETIME(6) NOT NULL, deleted TINYINT(1) NOT NULL DEFAULT 0, INDEX items_changes (updated_at, id))"},
			// settle left at its default: the suite's times are long past.
			poll: map[string]any{"table": "items", "change_column": "updated_at", "tombstone_column": "deleted", "page_size": 4},
			put: func(t *testing.T, d sourceDB, key, name string, at time.Time, _ int64) {
				d.exec(t, `INSERT INTO items (id, name, updated_at, deleted) VALUES (?, ?, ?, 0)
					ON DUPLICATE KEY UPDATE name = VALUES(name), updated_at = VALUES(updated_at), deleted = 0`, key, name, at)
			},
			del: func(t *testing.T, d sourceDB, key string, at time.Time, _ int64) {
				d.exec(t, `UPDATE items SET deleted = 1, updated_at = ? WHERE id = ?`, at, key)
			},
			reset: `DELETE FROM items`,
		},
		{
			name: "mariadb table, sequence, integer key, deleted_at", driver: sqltarget.DriverMariaDB,
			tables: []string{"CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(100), seq BIGINT NOT NULL, deleted_at TIMESTAMP(6) NULL, UNIQUE INDEX items_seq (seq))"},
			poll:   map[string]any{"table": "items", "change_column": "seq", "change_type": "sequence", "tombstone_column": "deleted_at", "page_size": 5},
			put: func(t *testing.T, d sourceDB, key, name string, _ time.Time, seq int64) {
				d.exec(t, `INSERT INTO items (id, name, seq, deleted_at) VALUES (?, ?, ?, NULL)
					ON DUPLICATE KEY UPDATE name = VALUES(name), seq = VALUES(seq), deleted_at = NULL`, key, name, seq)
			},
			del: func(t *testing.T, d sourceDB, key string, at time.Time, seq int64) {
				d.exec(t, `UPDATE items SET deleted_at = ?, seq = ? WHERE id = ?`, at, seq, key)
			},
			reset: `DELETE FROM items`,
		},
	}
}

// TestSourceConformance runs the source suite against PostgreSQL and MariaDB, on tables and
// a view, by an updated-at and by a sequence, each on a fresh database.
func TestSourceConformance(t *testing.T) {
	for _, c := range sourceCases() {
		t.Run(c.name, func(t *testing.T) {
			d := newSourceDB(t, c.driver)
			for _, s := range c.tables {
				d.exec(t, s)
			}
			var seq atomic.Int64
			connectortest.RunSource(t, connectortest.SourceHarness{
				Entity: "item",
				Open:   func(t *testing.T) connector.Source { return d.open(t, map[string]any{"item": c.poll}) },
				Put: func(t *testing.T, key string, fields map[string]string, at time.Time) {
					c.put(t, d, key, fields["name"], at, seq.Add(1))
				},
				Delete: func(t *testing.T, key string, at time.Time) { c.del(t, d, key, at, seq.Add(1)) },
				Reset:  func(t *testing.T) { d.exec(t, c.reset) },
			})
		})
	}
}

var drivers = []string{sqltarget.DriverPostgres, sqltarget.DriverMariaDB}

// itemsTable makes a table of items changed at updated_at, deleted when deleted_at is set.
func itemsTable(t *testing.T, d sourceDB) {
	t.Helper()
	ts := "TIMESTAMPTZ"
	if d.driver == sqltarget.DriverMariaDB {
		ts = "DATETIME(6)"
	}
	d.exec(t, "CREATE TABLE items (id VARCHAR(20) PRIMARY KEY, name VARCHAR(100), updated_at "+ts+" NULL, deleted_at "+ts+" NULL)")
}

func read(t *testing.T, src connector.Source, entity, cursor string) connector.Page {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := src.Read(ctx, entity, cursor)
	if err != nil {
		t.Fatalf("Read(%s, %q): %v", entity, cursor, err)
	}
	return p
}

func keys(p connector.Page) string {
	ks := make([]string, len(p.Changes))
	for i, c := range p.Changes {
		ks[i] = c.Key
		if c.Delete {
			ks[i] += "(deleted)"
		}
	}
	return strings.Join(ks, ",")
}

// TestSourceTieStraddlesAPageBoundary: b, c and d share one updated-at and the first page
// ends at b, so the tie straddles the boundary; the next page reads c and d, each once, and
// a later change of b is read from the cursor after them.
func TestSourceTieStraddlesAPageBoundary(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			d := newSourceDB(t, driver)
			itemsTable(t, d)
			t1 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
			t2 := t1.Add(time.Millisecond)
			for _, r := range []struct {
				key string
				at  time.Time
			}{{"d", t2}, {"a", t1}, {"c", t2}, {"b", t2}} {
				d.exec(t, `INSERT INTO items (id, name, updated_at) VALUES (?, ?, ?)`, r.key, "item "+r.key, r.at)
			}
			src := d.open(t, map[string]any{"item": map[string]any{"table": "items", "change_column": "updated_at", "page_size": 2}})

			p1 := read(t, src, "item", "")
			if keys(p1) != "a,b" || !p1.More {
				t.Fatalf("first page: %s (more %v), want a,b and more", keys(p1), p1.More)
			}
			p2 := read(t, src, "item", p1.Cursor)
			if keys(p2) != "c,d" {
				t.Fatalf("second page: %s, want c,d: the rest of the tie, once", keys(p2))
			}
			if p2.Changes[0].Version != t2.UnixMicro() || !p2.Changes[0].OccurredAt.Equal(t2) {
				t.Errorf("c's version %d at %s, want %d at %s", p2.Changes[0].Version, p2.Changes[0].OccurredAt, t2.UnixMicro(), t2)
			}
			// The second page's cursor was lost: reading it again gives the same page.
			if again := read(t, src, "item", p1.Cursor); keys(again) != "c,d" {
				t.Fatalf("second page read again: %s, want c,d", keys(again))
			}
			p3 := read(t, src, "item", p2.Cursor)
			if len(p3.Changes) != 0 || p3.More || p3.Cursor != p2.Cursor {
				t.Fatalf("after the last row: %s (more %v, cursor moved %v), want nothing", keys(p3), p3.More, p3.Cursor != p2.Cursor)
			}

			d.exec(t, `UPDATE items SET name = 'b again', updated_at = ? WHERE id = 'b'`, t2.Add(time.Second))
			p4 := read(t, src, "item", p3.Cursor)
			if keys(p4) != "b" {
				t.Fatalf("after b changed: %s, want b", keys(p4))
			}
			var rec map[string]any
			if err := json.Unmarshal(p4.Changes[0].Payload, &rec); err != nil || rec["name"] != "b again" {
				t.Fatalf("b's payload %s, want name b again", p4.Changes[0].Payload)
			}
		})
	}
}

// TestSourceTombstones: a row whose tombstone is set is read as a delete of its key, one
// whose tombstone is cleared again as a change; NULL and false are live, as are rows of a
// table read without a tombstone column.
func TestSourceTombstones(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			d := newSourceDB(t, driver)
			itemsTable(t, d)
			d.exec(t, `ALTER TABLE items ADD COLUMN archived BOOLEAN NOT NULL DEFAULT false`)
			at := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
			d.exec(t, `INSERT INTO items (id, name, updated_at) VALUES ('a', 'A', ?), ('b', 'B', ?)`, at, at.Add(time.Second))
			byDate := d.open(t, map[string]any{"item": map[string]any{"table": "items", "change_column": "updated_at", "tombstone_column": "deleted_at"}})
			byFlag := d.open(t, map[string]any{"item": map[string]any{"table": "items", "change_column": "updated_at", "tombstone_column": "archived"}})
			plain := d.open(t, map[string]any{"item": map[string]any{"table": "items", "change_column": "updated_at"}})

			p := read(t, byDate, "item", "")
			if keys(p) != "a,b" {
				t.Fatalf("live rows: %s, want a,b", keys(p))
			}
			d.exec(t, `UPDATE items SET deleted_at = ?, updated_at = ? WHERE id = 'a'`, at.Add(time.Minute), at.Add(time.Minute))
			d.exec(t, `UPDATE items SET archived = true, updated_at = ? WHERE id = 'b'`, at.Add(2*time.Minute))
			dates := read(t, byDate, "item", p.Cursor)
			if keys(dates) != "a(deleted),b" {
				t.Fatalf("by deleted_at: %s, want a deleted and b changed", keys(dates))
			}
			if c := dates.Changes[0]; c.Version != at.Add(time.Minute).UnixMicro() || !strings.Contains(string(c.Payload), `"id":"a"`) {
				t.Errorf("a's delete: version %d, payload %s", c.Version, c.Payload)
			}
			if flags := read(t, byFlag, "item", p.Cursor); keys(flags) != "a,b(deleted)" {
				t.Fatalf("by the archived flag: %s, want a changed and b deleted", keys(flags))
			}
			if all := read(t, plain, "item", p.Cursor); keys(all) != "a,b" {
				t.Fatalf("without a tombstone column: %s, want a,b changed", keys(all))
			}
			d.exec(t, `UPDATE items SET deleted_at = NULL, updated_at = ? WHERE id = 'a'`, at.Add(3*time.Minute))
			if back := read(t, byDate, "item", dates.Cursor); keys(back) != "a" {
				t.Fatalf("a restored: %s, want a changed", keys(back))
			}
		})
	}
}

// TestSourceSettleWaitsForLateCommits: a row's updated-at is set in a transaction that
// commits after a later change of another row has committed. Read at that moment, a source
// that does not wait would pass the late row's time and never read it; with settle it
// reads neither until both are old enough, then both.
func TestSourceSettleWaitsForLateCommits(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			d := newSourceDB(t, driver)
			itemsTable(t, d)
			src := d.open(t, map[string]any{"item": map[string]any{"table": "items", "change_column": "updated_at", "settle": "2s", "page_size": 10}})
			ctx := context.Background()

			tx, err := d.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback() //nolint:errcheck // committed below; a failed test rolls back
			early := time.Now().UTC()
			if _, err := tx.ExecContext(ctx, d.sql(`INSERT INTO items (id, name, updated_at) VALUES ('late', 'committed late', ?)`), early); err != nil {
				t.Fatal(err)
			}
			d.exec(t, `INSERT INTO items (id, name, updated_at) VALUES ('prompt', 'committed at once', ?)`, early.Add(10*time.Millisecond))

			p := read(t, src, "item", "")
			if len(p.Changes) != 0 {
				t.Fatalf("read %s within the settle time, want nothing yet", keys(p))
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			got, cursor := "", p.Cursor
			deadline := time.Now().Add(15 * time.Second)
			for got != "late,prompt" && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				p := read(t, src, "item", cursor)
				if len(p.Changes) > 0 {
					if got != "" {
						got += ","
					}
					got += keys(p)
					cursor = p.Cursor
				}
			}
			if got != "late,prompt" {
				t.Fatalf("read %q once settled, want late,prompt", got)
			}
		})
	}
}

// TestSourcePayloads: a row becomes a JSON object of column -> value: numbers as numbers
// (decimals with every digit), timestamps RFC 3339 in UTC, dates as dates, NULL as null,
// bytes as base64, JSON documents as themselves.
func TestSourcePayloads(t *testing.T) {
	at := time.Date(2026, 5, 1, 8, 30, 15, 123456000, time.UTC)
	want := map[string]string{
		"id": `7`, "name": `"Zoë"`, "price": `12.3400`, "qty": `-3`, "ratio": `0.25`, "born": `"1990-04-05"`,
		"updated_at": `"2026-05-01T08:30:15.123456Z"`, "raw": `"AAH/"`, "note": `null`, "doc": `{"a":[1,2]}`,
	}
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			d := newSourceDB(t, driver)
			if driver == sqltarget.DriverPostgres {
				d.exec(t, `CREATE TABLE things (id BIGINT PRIMARY KEY, name TEXT, price NUMERIC(12,4), qty INTEGER, ratio DOUBLE PRECISION,
					born DATE, updated_at TIMESTAMPTZ, raw BYTEA, note TEXT, doc JSONB, active BOOLEAN)`)
				want["active"] = `true`
			} else {
				// MariaDB's JSON is text (LONGTEXT with a check), so it reads as a string; a
				// BOOLEAN is TINYINT(1), so it reads as a number.
				d.exec(t, `CREATE TABLE things (id BIGINT PRIMARY KEY, name VARCHAR(20), price DECIMAL(12,4), qty INT, ratio DOUBLE,
					born DATE, updated_at TIMESTAMP(6) NULL, raw VARBINARY(10), note TEXT, doc JSON, active BOOLEAN)`)
				want = clone(want)
				want["doc"], want["active"] = `"{\"a\":[1,2]}"`, `1`
			}
			d.exec(t, `INSERT INTO things VALUES (7, 'Zoë', 12.34, -3, 0.25, '1990-04-05', ?, ?, NULL, '{"a":[1,2]}', true)`, at, []byte{0, 1, 255})
			src := d.open(t, map[string]any{"thing": map[string]any{"table": "things", "change_column": "updated_at"}})
			p := read(t, src, "thing", "")
			if len(p.Changes) != 1 {
				t.Fatalf("read %d changes, want 1", len(p.Changes))
			}
			c := p.Changes[0]
			if c.Key != "7" || c.Version != at.UnixMicro() || c.Delete {
				t.Errorf("change key %q version %d delete %v, want 7, %d, false", c.Key, c.Version, c.Delete, at.UnixMicro())
			}
			var got map[string]json.RawMessage
			if err := json.Unmarshal(c.Payload, &got); err != nil {
				t.Fatalf("payload %s is not a JSON object: %v", c.Payload, err)
			}
			if len(got) != len(want) {
				t.Errorf("payload %s has %d columns, want %d", c.Payload, len(got), len(want))
			}
			for col, w := range want {
				var compact bytes.Buffer
				if err := json.Compact(&compact, got[col]); err != nil || compact.String() != w {
					t.Errorf("column %s = %s, want %s", col, got[col], w)
				}
			}
			// The integer key goes on from the cursor as a number: 10 follows 7.
			d.exec(t, `INSERT INTO things (id, name, updated_at) VALUES (10, 'ten', ?), (8, 'eight', ?)`, at, at)
			next := read(t, src, "thing", p.Cursor)
			if keys(next) != "8,10" {
				t.Fatalf("after 7 in the same updated-at: %s, want 8,10", keys(next))
			}
			// A column added while the source runs is in the next payload.
			d.exec(t, `ALTER TABLE things ADD COLUMN extra VARCHAR(10)`)
			d.exec(t, `UPDATE things SET extra = 'new', updated_at = ? WHERE id = 8`, at.Add(time.Second))
			last := read(t, src, "thing", next.Cursor)
			if keys(last) != "8" || !strings.Contains(string(last.Changes[0].Payload), `"extra":"new"`) {
				t.Fatalf("after a column was added: %s, changes %v; want 8 with extra", keys(last), last.Changes)
			}
		})
	}
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestSourceRefusesCursorsNotItsOwn: a cursor of another source, of another entity, or made
// for another kind of change column is refused with what to do; none reads anything.
func TestSourceRefusesCursorsNotItsOwn(t *testing.T) {
	d := newSourceDB(t, sqltarget.DriverPostgres)
	d.exec(t, `CREATE TABLE items (id TEXT PRIMARY KEY, updated_at TIMESTAMPTZ, seq BIGINT)`)
	d.exec(t, `INSERT INTO items VALUES ('a', now() - interval '1 hour', 1)`)
	polls := map[string]any{
		"item":  map[string]any{"table": "items", "change_column": "updated_at"},
		"other": map[string]any{"table": "items", "change_column": "updated_at"},
	}
	src := d.open(t, polls)
	p := read(t, src, "item", "")
	if len(p.Changes) != 1 || !strings.HasPrefix(p.Cursor, "sql1.") {
		t.Fatalf("first read: %d changes, cursor %q", len(p.Changes), p.Cursor)
	}
	bySeq := d.open(t, map[string]any{"item": map[string]any{"table": "items", "change_column": "seq", "change_type": "sequence"}})
	for _, tt := range []struct {
		name   string
		src    connector.Source
		entity string
		cursor string
		want   string
	}{
		{"another source's", src, "item", "1700000000000000:a", `is not a cursor of the sql source (they start sql1.); an empty cursor reads the entity from the beginning`},
		{"garbage after the prefix", src, "item", "sql1.!!", "is not a cursor of the sql source"},
		{"another entity's", src, "other", p.Cursor, "cursor of entity item was given to read entity other"},
		{"another change type's", bySeq, "item", p.Cursor, "made for a timestamp change column, and settings.poll.item.change_type is now sequence"},
		{"an entity not polled", src, "order", "", `reading entity "order": this sql endpoint does not poll it; settings.poll has item, other`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.src.Read(context.Background(), tt.entity, tt.cursor)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Read = %d changes, %v; want an error containing %q", len(got.Changes), err, tt.want)
			}
		})
	}
}

// TestSourceCheck: Check names the entity whose table or column is missing.
func TestSourceCheck(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			d := newSourceDB(t, driver)
			itemsTable(t, d)
			good := d.open(t, map[string]any{"item": map[string]any{"table": "items", "change_column": "updated_at", "tombstone_column": "deleted_at"}})
			if err := good.Check(context.Background()); err != nil {
				t.Fatalf("Check: %v", err)
			}
			bad := d.open(t, map[string]any{
				"item":  map[string]any{"table": "items", "change_column": "changed_at"},
				"order": map[string]any{"table": "orders", "change_column": "updated_at"},
			})
			err := bad.Check(context.Background())
			for _, want := range []string{"settings.poll.item: reading columns id, changed_at of table items", "settings.poll.order:", "check the table and column names"} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Check error = %v, want %q", err, want)
				}
			}
			if _, err := bad.Read(context.Background(), "item", ""); err == nil || !strings.Contains(err.Error(), "reading entity item from table items (settings.poll.item)") {
				t.Errorf("Read of a missing column = %v, want an error naming the entity's settings", err)
			}
		})
	}
}

// TestSourceSettings: what is wrong with a polled endpoint's settings is a SettingsError at
// its path, saying what to do.
func TestSourceSettings(t *testing.T) {
	r := connector.NewRegistry()
	if err := sqltarget.Register(r); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if !r.Polls(sqltarget.Type) {
		t.Fatal("the sql connector is not registered as polled")
	}
	pg := func(polls any) map[string]any {
		return map[string]any{"driver": "postgres", "dsn": "postgres://u@db.example.com/shop", "table": "customers", "poll": polls}
	}
	maria := func(dsn string, polls any) map[string]any {
		return map[string]any{"driver": "mariadb", "dsn": dsn, "table": "customers", "poll": polls}
	}
	item := func(kv ...any) map[string]any {
		m := map[string]any{"table": "items", "change_column": "updated_at"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return map[string]any{"item": m}
	}
	for _, tt := range []struct {
		name     string
		settings map[string]any
		want     string // empty: valid
	}{
		{"minimal", pg(item()), ""},
		{"every setting", pg(item("key_column", "ref", "change_type", "timestamp", "tombstone_column", "deleted_at", "page_size", 100, "settle", "1m")), ""},
		{"a sequence", maria("mariadb://u@db.example.com:3307/shop?tls=true&timeout=5s", item("change_column", "seq", "change_type", "sequence", "page_size", float64(50))), ""},
		{"the endpoint's table", pg(map[string]any{"item": map[string]any{"change_column": "updated_at"}}), ""},
		{"no table at all", map[string]any{"driver": "postgres", "dsn": "postgres://u@h/db", "poll": item()}, "settings.table: required"},
		{"a mariadb endpoint's table in another database", map[string]any{"driver": "mariadb", "dsn": "mariadb://u@h/shop", "table": "mysql.user", "poll": item()},
			`settings.table: "mysql.user" names another database: a mariadb endpoint reads the database of its DSN only`},
		{"no poll", map[string]any{"driver": "postgres", "dsn": "postgres://u@h/db", "table": "t"}, "settings.poll: names no entity, so the endpoint cannot be polled; give per entity its table, key_column and change_column"},
		{"sqlite", map[string]any{"driver": "sqlite", "dsn": "x.db", "table": "t", "poll": item()}, "settings.driver: a sqlite endpoint is not polled (it is a target only); poll a postgres or mariadb database"},
		{"an entity that is not a map", pg(map[string]any{"item": "items"}), "settings.poll.item: must be a map such as {table: customers"},
		{"a bad entity name", pg(map[string]any{"Item": map[string]any{"table": "items", "change_column": "c"}}), "settings.poll.Item: the entity name must be lower-case"},
		{"an empty table", pg(item("table", "")), "settings.poll.item.table: required: the table or view to read"},
		{"a table with SQL in it", pg(item("table", "items; DROP TABLE x")), `settings.poll.item.table: "items; DROP TABLE x" is not valid`},
		{"a mariadb table in another database", maria("mariadb://u@h/shop", item("table", "mysql.user")), `settings.poll.item.table: "mysql.user" names another database: a mariadb endpoint reads the database of its DSN only`},
		{"no change column", pg(map[string]any{"item": map[string]any{"table": "items"}}), "settings.poll.item.change_column: required"},
		{"a change column that is the key", pg(item("change_column", "id")), "settings.poll.item.change_column: is the key column too"},
		{"a bad column", pg(item("key_column", "a-b")), `settings.poll.item.key_column: "a-b" is not a column name`},
		{"a tombstone that is the change column", pg(item("tombstone_column", "updated_at")), "settings.poll.item.tombstone_column: is the key or change column"},
		{"an unknown change type", pg(item("change_type", "xmin")), `settings.poll.item.change_type: "xmin" is not one of timestamp, sequence`},
		{"page size 0", pg(item("page_size", 0)), "settings.poll.item.page_size: 0 is out of range: from 1 to 10000"},
		{"page size as text", pg(item("page_size", "10")), "settings.poll.item.page_size: must be a whole number"},
		{"a negative settle", pg(item("settle", "-1s")), "settings.poll.item.settle: must be 0s or more"},
		{"settle that is no duration", pg(item("settle", "soon")), `settings.poll.item.settle: must be a duration such as "5s"`},
		{"settle with a sequence", pg(item("change_type", "sequence", "settle", "5s")), "settings.poll.item.settle: applies to change_type timestamp only"},
		{"an unknown entity setting", pg(item("colums", "a")), "settings.poll.item.colums: unknown setting; a polled entity's settings are change_column, change_type, key_column, page_size, settle, table, tombstone_column"},
		{"a mariadb key=value DSN", maria("u@tcp(h:3306)/shop", item()), "settings.dsn: the value (not shown, it is secret) is not valid"},
		{"a postgres URL for mariadb", maria("postgres://u@h/shop", item()), "settings.dsn: is not a mariadb URL (the value is not shown)"},
		{"a mariadb URL without a database", maria("mariadb://u@h:3306/", item()), "settings.dsn: names no database"},
		{"a mariadb URL without a user", maria("mariadb://h:3306/shop", item()), "settings.dsn: names no user"},
		{"a mariadb file parameter", maria("mariadb://u@h/shop?allowAllFiles=true", item()), "settings.dsn: parameter allowAllFiles is not allowed: the sql connector takes tls, timeout, readTimeout, writeTimeout for mariadb"},
		{"a mariadb TLS config by name", maria("mariadb://u@h/shop?tls=custom", item()), `settings.dsn: parameter tls is "custom", not one of true, false, skip-verify, preferred`},
		{"a mariadb password in the URL", maria("mariadb://u:pw@h/shop", item()), "settings.dsn:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := r.SourceEntities(sqltarget.Type, tt.settings, "item")
			if err == nil {
				_, err = r.Destinations(sqltarget.Type, tt.settings)
			}
			if tt.want == "" {
				if err != nil {
					t.Fatalf("settings refused: %v", err)
				}
				return
			}
			var se *connector.SettingsError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want a SettingsError containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "pw@") {
				t.Errorf("error %q shows the DSN", err)
			}
		})
	}
	if err := r.SourceEntities(sqltarget.Type, pg(item()), "order"); err == nil || !strings.Contains(err.Error(), `cannot be polled for "order"; it can be for item`) {
		t.Errorf("SourceEntities for an entity not in poll = %v", err)
	}
}

// TestMariaDBConnectsThroughTheEgressPolicy: the policy is checked when the source connects,
// against the address it connects to; a name that resolved to a public address when the
// settings were checked and to loopback when the driver dials is refused, and a server the
// policy does not allow is refused before any connection.
func TestMariaDBConnectsThroughTheEgressPolicy(t *testing.T) {
	db := mariadbtest.NewDatabase(t)
	settings := func(host string) map[string]any {
		return map[string]any{"driver": "mariadb", "dsn": "mariadb://syncline_test@" + host + "/" + db.Name, "password": db.Password, "table": "items",
			"poll": map[string]any{"item": map[string]any{"table": "items", "change_column": "updated_at"}}}
	}
	r := connector.NewRegistry()
	if err := sqltarget.Register(r); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(strings.TrimPrefix(db.URL, "mariadb://syncline_test@"), ":")
	port, _, _ = strings.Cut(port, "/")

	env := egressEnv(t, connector.EgressConfig{}, t.TempDir())
	_, err := r.OpenSource(context.Background(), sqltarget.Type, settings("127.0.0.1:"+port), env)
	if want := "settings.dsn: host 127.0.0.1:" + port + " (a loopback address) is not in the egress policy"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("OpenSource of a loopback server = %v, want %q", err, want)
	}

	env = egressEnv(t, connector.EgressConfig{Resolver: &rebinding{then: mustAddr("127.0.0.1")}}, t.TempDir())
	src, err := r.OpenSource(context.Background(), sqltarget.Type, settings("erp.example.com:"+port), env)
	if err == nil {
		_ = src.Close()
		t.Fatal("OpenSource succeeded, want the connection refused")
	}
	if want := fmt.Sprintf("host erp.example.com:%s (127.0.0.1) (a loopback address) is not in the egress policy", port); !strings.Contains(err.Error(), want) {
		t.Fatalf("OpenSource error = %v, want %q", err, want)
	}

	env = egressEnv(t, connector.EgressConfig{Resolver: &rebinding{then: mustAddr("127.0.0.1")}, Allow: []string{"erp.example.com:" + port}}, t.TempDir())
	src, err = r.OpenSource(context.Background(), sqltarget.Type, settings("erp.example.com:"+port), env)
	if err != nil {
		t.Fatalf("OpenSource of a host allowed by name: %v", err)
	}
	defer src.Close()
	if err := src.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "settings.poll.item") {
		t.Fatalf("Check of a database without the table = %v, want it named", err)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
