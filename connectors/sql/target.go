// Package sql is the "sql" target connector: it writes mapped records as rows of one table in
// PostgreSQL or SQLite, upserted by the source key, which it stores in the key column as the
// record's external reference. It serves any entity (connector.AnyEntity): the table's columns
// are the flow's fields, so it finds records by their external reference, reads them, and
// creates, updates and deletes them; the platform's recipe (pkg/recipe) does the rest.
//
// A batch is written in one transaction with a few round trips: PostgreSQL gets one statement
// per distinct field set that binds the whole batch as a single JSON parameter, SQLite one
// prepared statement per field set. A record the database refuses on its own (a constraint, a
// value that does not fit its column) fails alone; the rest of its batch is written.
package sql

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/syncline/syncline/pkg/connector"
)

// maxIdentifierBytes is PostgreSQL's limit on a column name; longer names would be truncated
// silently, so the column would never match its field. SQLite gets the same limit so that a
// mapping works on both.
const maxIdentifierBytes = 63

// Target writes records to one table. It is safe for concurrent use.
type Target struct {
	store  store
	table  string // as configured, for messages
	key    string
	create bool
	// readOnly: opened for a test, the target creates no table and adds no
	// column; a table it would create is absent, so it finds nothing in it.
	readOnly bool
	absent   bool
	// budget is the endpoint's: each lookup and each write transaction is one request in it.
	budget *connector.Budget

	// mu guards cols and stale, and is held across schema changes so that concurrent pushes
	// that bring the same new field add its column once. cols is replaced, never changed, so
	// a snapshot taken under mu may be read without it.
	mu    sync.Mutex
	cols  map[string]bool
	stale bool
}

var _ connector.Target = (*Target)(nil)

// store is the part of the target that speaks one SQL dialect.
type store interface {
	ping(ctx context.Context) error
	// columns returns the table's column names; ok is false when there is no such table.
	columns(ctx context.Context) (cols map[string]bool, ok bool, err error)
	// keyIsUnique reports whether the key column has a unique index of its own, which an
	// upsert by key needs.
	keyIsUnique(ctx context.Context) (bool, error)
	createTable(ctx context.Context) error
	addColumns(ctx context.Context, cols []newColumn) error
	// find returns the rows whose key is one of keys, each as a JSON object of its fields
	// (without the key and the target's own columns).
	find(ctx context.Context, keys []string) (map[string]json.RawMessage, error)
	// write applies rows in order in one transaction. It sets TargetID on the results of rows
	// that were written and Err on those the database refused on their own, and returns an
	// error when the batch as a whole failed.
	write(ctx context.Context, rows []row, m managed, results []connector.Result) error
	close() error
}

// managed says which of the target's own columns the table has.
type managed struct {
	version, syncedAt bool
}

// row is a record that passed the checks that need no database.
type row struct {
	index   int // in the pushed batch, where its result goes
	key     string
	op      connector.WriteOp
	version int64
	fields  []field // sorted by name; nil for deletes
	shape   string  // the field names joined, so rows with the same columns share a statement
}

type field struct {
	name  string
	value json.RawMessage
}

// columnType is the SQL type a new column gets, chosen from a JSON value.
type columnType int

const (
	columnText columnType = iota
	columnNumber
	columnBool
	columnJSON
	columnVersion
	columnTimestamp
)

type newColumn struct {
	name string
	typ  columnType
}

// Open connects to the database and checks the table: it exists (or is created when
// CreateTable is set), it has the key column, and that column is unique. It reaches only
// what env's egress policy allows: a SQLite file in the tenant's folder, postgres servers
// through the policy's dialer, which checks every connection's address when it is made.
// ctx bounds the opening only.
func Open(ctx context.Context, s Settings, env connector.Env) (*Target, error) {
	if err := s.validate(ctx, env); err != nil {
		return nil, err
	}
	table := parseTable(s.Table)
	var (
		st  store
		err error
	)
	switch s.Driver {
	case DriverPostgres:
		st, err = openPostgres(ctx, s.DSN, s.Password, table, s.KeyColumn, env)
	default:
		st, err = openSQLite(s.DSN, table, s.KeyColumn, env)
	}
	if err != nil {
		return nil, err
	}
	if err := st.ping(ctx); err != nil {
		hint := "check the host, port, user, password and database in the URL"
		if s.Driver == DriverSQLite {
			hint = "check that the file's folder exists and is writable"
		}
		err = fmt.Errorf("connecting to the %s database of settings.dsn (not shown: it may hold a password): %w; %s", s.Driver, err, hint)
		return nil, errors.Join(err, st.close())
	}
	budget := env.Budget
	if budget == nil {
		budget = connector.NewBudget(connector.BudgetConfig{})
	}
	t := &Target{store: st, table: s.Table, key: s.KeyColumn, create: s.CreateTable, readOnly: env.ReadOnly, budget: budget}
	if _, err := t.loadColumns(ctx); err != nil {
		return nil, errors.Join(err, st.close())
	}
	return t, nil
}

// Find returns the rows whose key column holds one of values; field must be
// connector.FieldExternalRef. The entity is not used: the table holds one entity, so an
// endpoint of this type serves one entity's flows.
func (t *Target) Find(ctx context.Context, _ string, field string, values []string) ([]connector.Found, error) {
	if field != connector.FieldExternalRef {
		return nil, fmt.Errorf("finding rows of table %q by %q: the sql target finds rows by %s only", t.table, field, connector.FieldExternalRef)
	}
	if len(values) == 0 || t.absent {
		return nil, nil
	}
	release, err := t.budget.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("looking up %d keys in table %q: waiting for the endpoint's budget: %w", len(values), t.table, err)
	}
	rows, err := t.store.find(ctx, values)
	release()
	if err != nil {
		t.mu.Lock()
		t.stale = true
		t.mu.Unlock()
		return nil, fmt.Errorf("looking up %d keys in table %q: %w", len(values), t.table, err)
	}
	found := make([]connector.Found, 0, len(rows))
	for key, fields := range rows {
		found = append(found, connector.Found{Value: key, ID: key, Fields: fields})
	}
	return found, nil
}

// Check checks that the database answers and the table is there with its key column.
func (t *Target) Check(ctx context.Context) error {
	if err := t.store.ping(ctx); err != nil {
		return fmt.Errorf("connecting to the database of table %q: %w", t.table, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	_, err := t.loadColumns(ctx)
	return err
}

// Write applies writes in order in one transaction; see connector.Target. A create and an
// update are both an upsert by key (the id of a row is its key), which writes only the
// fields in the payload, so a retried create finds its row and writes it again.
func (t *Target) Write(ctx context.Context, _ string, writes []connector.Write) ([]connector.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("writing to table %q: %w", t.table, err)
	}
	results := make([]connector.Result, len(writes))
	rows := make([]row, 0, len(writes))
	p := parser{names: interner{}}
	for i, w := range writes {
		r, err := t.parse(i, w, &p)
		if err != nil {
			results[i].Err = err
			continue
		}
		rows = append(rows, r)
	}
	cols, err := t.columnsFor(ctx, rows)
	if err != nil {
		return nil, err
	}
	rows = t.dropUnwritable(rows, cols, results)
	if len(rows) == 0 {
		return results, nil
	}
	m := managed{version: cols[sourceVersionColumn], syncedAt: cols[syncedAtColumn]}
	release, err := t.budget.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("writing %d records to table %q: waiting for the endpoint's budget: %w", len(rows), t.table, err)
	}
	err = t.store.write(ctx, rows, m, results)
	release()
	if err != nil {
		// A dropped column or table also fails a batch; reading the columns again before the
		// retry turns that into per-record errors instead of a batch that fails forever.
		t.mu.Lock()
		t.stale = true
		t.mu.Unlock()
		return nil, fmt.Errorf("writing %d records to table %q: %w", len(rows), t.table, err)
	}
	return results, nil
}

// Close closes the database connections.
func (t *Target) Close() error {
	if err := t.store.close(); err != nil {
		return fmt.Errorf("closing the connection to table %q: %w", t.table, err)
	}
	return nil
}

// parser holds what parsing one record leaves for the next one in the same push.
type parser struct {
	names  interner
	shape  []byte
	fields int // of the last record, a good guess for the next one
}

// parse checks a write and splits its payload into fields.
func (t *Target) parse(i int, rec connector.Write, p *parser) (row, error) {
	if rec.Key == "" {
		// The id of a row is its key.
		rec.Key = rec.ID
	}
	if rec.Key == "" {
		return row{}, fmt.Errorf("record %d of the batch has an empty key; the flow's key field must be set", i)
	}
	r := row{index: i, key: rec.Key, op: rec.Op, version: rec.Version}
	switch rec.Op {
	case connector.WriteDelete:
		return r, nil
	case connector.WriteCreate, connector.WriteUpdate:
		r.op = connector.WriteUpdate
	default:
		return row{}, fmt.Errorf("record %q: write %q is none of %q, %q and %q", rec.Key, rec.Op, connector.WriteCreate, connector.WriteUpdate, connector.WriteDelete)
	}
	fields, ok := splitObject(rec.Payload, p.names, p.fields)
	if !ok {
		return row{}, fmt.Errorf("record %q: the payload is not a JSON object; the mapping must produce an object of field -> value", rec.Key)
	}
	for _, f := range fields {
		if err := t.checkFieldName(f.name); err != nil {
			return row{}, fmt.Errorf("record %q: %w", rec.Key, err)
		}
	}
	p.fields = len(fields)
	r.fields = fields
	p.shape = p.shape[:0]
	for _, f := range fields {
		p.shape = append(p.shape, f.name...)
		p.shape = append(p.shape, 0)
	}
	r.shape = p.names.get(p.shape)
	return r, nil
}

func (t *Target) checkFieldName(name string) error {
	switch {
	case name == "":
		return errors.New("a field has an empty name; name it in the mapping")
	case len(name) > maxIdentifierBytes:
		return fmt.Errorf("field %q is longer than %d bytes, the longest column name PostgreSQL keeps; shorten it in the mapping", name, maxIdentifierBytes)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("field %q holds a NUL character, which no column name may; rename it in the mapping", name)
	case name == t.key:
		return fmt.Errorf("field %q is the key column (settings.key_column), which holds the source key; rename the field in the mapping", name)
	case name == sourceVersionColumn || name == syncedAtColumn:
		return fmt.Errorf("field %q is a column the sql target fills itself; rename the field in the mapping", name)
	}
	return nil
}

// columnsFor returns the table's columns, adding those that rows need when the target
// manages the table. The cached columns serve every push until a field without a column
// appears or a batch failed.
func (t *Target) columnsFor(ctx context.Context, rows []row) (map[string]bool, error) {
	t.mu.Lock()
	cols, stale := t.cols, t.stale
	t.mu.Unlock()
	if !stale && len(missingColumns(rows, cols)) == 0 {
		return cols, nil
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	cols, err := t.loadColumns(ctx)
	if err != nil {
		return nil, err
	}
	missing := missingColumns(rows, cols)
	if len(missing) == 0 || !t.create {
		return cols, nil
	}
	if err := t.store.addColumns(ctx, missing); err != nil {
		names := make([]string, len(missing))
		for i, c := range missing {
			names[i] = c.name
		}
		return nil, fmt.Errorf("adding columns %s to table %q: %w", strings.Join(names, ", "), t.table, err)
	}
	return t.loadColumns(ctx)
}

// loadColumns reads the table's columns into the cache, creating the table and the target's
// own columns first when the target manages the table, and checks the key column. Callers
// hold mu, or own t alone.
func (t *Target) loadColumns(ctx context.Context) (map[string]bool, error) {
	cols, ok, err := t.store.columns(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the columns of table %q: %w", t.table, err)
	}
	if !ok {
		if !t.create {
			return nil, fmt.Errorf("table %q (settings.table) does not exist; create it with a unique column %q for the source key, or set settings.create_table: true", t.table, t.key)
		}
		if t.readOnly {
			t.absent = true
			t.cols, t.stale = map[string]bool{t.key: true}, false
			return t.cols, nil
		}
		created := t.store.createTable(ctx)
		// Another replica may have created it at the same moment:
		// PostgreSQL's CREATE TABLE IF NOT EXISTS then fails on its
		// catalog's unique index. The table is there either way.
		if cols, ok, err = t.store.columns(ctx); err != nil {
			return nil, fmt.Errorf("reading the columns of table %q: %w", t.table, err)
		}
		if !ok && created != nil {
			return nil, fmt.Errorf("creating table %q: %w", t.table, created)
		}
	}
	if !cols[t.key] {
		return nil, fmt.Errorf("table %q has no column %q (settings.key_column); add it with a unique index, or set settings.key_column to the column that holds the source key", t.table, t.key)
	}
	unique, err := t.store.keyIsUnique(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the indexes of table %q: %w", t.table, err)
	}
	if !unique {
		return nil, fmt.Errorf("column %q of table %q has no unique index of its own, so records cannot be upserted by key; add one: CREATE UNIQUE INDEX ON %s (%s)", t.key, t.table, parseTable(t.table).quoted(), quote(t.key))
	}
	if t.create {
		var own []newColumn
		if !cols[sourceVersionColumn] {
			own = append(own, newColumn{name: sourceVersionColumn, typ: columnVersion})
		}
		if !cols[syncedAtColumn] {
			own = append(own, newColumn{name: syncedAtColumn, typ: columnTimestamp})
		}
		if len(own) > 0 {
			if err := t.store.addColumns(ctx, own); err != nil {
				return nil, fmt.Errorf("adding the columns %s and %s to table %q: %w", sourceVersionColumn, syncedAtColumn, t.table, err)
			}
			if cols, _, err = t.store.columns(ctx); err != nil {
				return nil, fmt.Errorf("reading the columns of table %q: %w", t.table, err)
			}
		}
	}
	t.cols, t.stale = cols, false
	return cols, nil
}

// succeed records that rows were written; the key is the row's id in the table.
func succeed(rows []row, results []connector.Result) {
	for _, r := range rows {
		results[r.index].TargetID = r.key
	}
}

// missingColumns lists the fields of rows that have no column, in name order, each typed
// from its first non-null value (TEXT when every value is null).
func missingColumns(rows []row, cols map[string]bool) []newColumn {
	var (
		missing []newColumn
		typed   []bool
		seen    = map[string]int{} // name -> index in missing
	)
	for _, r := range rows {
		for _, f := range r.fields {
			if cols[f.name] {
				continue
			}
			typ, known := typeOf(f.value)
			i, ok := seen[f.name]
			switch {
			case !ok:
				seen[f.name] = len(missing)
				missing = append(missing, newColumn{name: f.name, typ: typ})
				typed = append(typed, known)
			case known && !typed[i]:
				missing[i].typ, typed[i] = typ, true
			}
		}
	}
	slices.SortFunc(missing, func(a, b newColumn) int { return strings.Compare(a.name, b.name) })
	return missing
}

// typeOf chooses a column type from a JSON value; known is false for null, which fits any.
func typeOf(v json.RawMessage) (typ columnType, known bool) {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) == 0 {
		return columnText, false
	}
	switch v[0] {
	case '"':
		return columnText, true
	case '{', '[':
		return columnJSON, true
	case 't', 'f':
		return columnBool, true
	case 'n':
		return columnText, false
	}
	return columnNumber, true
}

// dropUnwritable fails, on their own, the rows with a field that has no column, and returns
// the rest in order.
func (t *Target) dropUnwritable(rows []row, cols map[string]bool, results []connector.Result) []row {
	kept := rows[:0]
	for _, r := range rows {
		var missing []string
		for _, f := range r.fields {
			if !cols[f.name] {
				missing = append(missing, fmt.Sprintf("%q", f.name))
			}
		}
		if len(missing) == 0 {
			kept = append(kept, r)
			continue
		}
		fix := "add the column to the table or set settings.create_table: true, then replay the record"
		if t.create {
			fix = "the column could not be added; check the table, then replay the record"
		}
		what := "field " + missing[0] + " has"
		if len(missing) > 1 {
			what = "fields " + strings.Join(missing, ", ") + " have"
		}
		results[r.index].Err = fmt.Errorf("record %q: %s no column in table %q; %s", r.key, what, t.table, fix)
	}
	return kept
}
