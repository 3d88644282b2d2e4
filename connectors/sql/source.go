package sql

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/syncline/syncline/pkg/connector"
)

// Source reads the changed rows of tables or views, per entity of settings.poll, keyset-wise
// on (change column, key): a page is the rows after the cursor's (change, key) in that
// order, so rows that share a change value are neither lost nor read twice when a page
// boundary falls among them. Read may run concurrently for different entities.
type Source struct {
	db       *sql.DB
	driver   string
	dialect  dialect
	entities map[string]*polled
	budget   *connector.Budget
}

var _ connector.Source = (*Source)(nil)

// polled is one entity with its statements, built once.
type polled struct {
	poll
	first, next string // the page from the beginning, the page after a cursor
	check       string // a query of the named columns that reads no row
}

// dialect is what differs between the databases in the statements a source sends.
type dialect struct {
	quote func(ident string) string
	param func(n int) string
	// horizon is the SQL of "now, by the database's clock, less the microseconds of the
	// parameter p", comparable with a timestamp column in a UTC session.
	horizon func(p string) string
}

var postgresDialect = dialect{
	quote:   quote,
	param:   func(n int) string { return "$" + strconv.Itoa(n) },
	horizon: func(p string) string { return "(now() - " + p + "::bigint * interval '1 microsecond')" },
}

var mariadbDialect = dialect{
	quote:   func(ident string) string { return "`" + strings.ReplaceAll(ident, "`", "``") + "`" },
	param:   func(int) string { return "?" },
	horizon: func(p string) string { return "(UTC_TIMESTAMP(6) - INTERVAL " + p + " MICROSECOND)" },
}

// openSource is the SourceFactory: it connects to the database of settings (checked, with
// their destinations allowed by env's egress policy) and prepares each entity's statements.
// ctx bounds the opening only.
func openSource(ctx context.Context, settings map[string]any, env connector.Env) (connector.Source, error) {
	polls, err := parsePolls(settings)
	if err != nil {
		return nil, err
	}
	s := settingsFrom(settings)
	src := &Source{driver: s.Driver, entities: map[string]*polled{}, budget: env.Budget}
	if src.budget == nil {
		src.budget = connector.NewBudget(connector.BudgetConfig{})
	}
	switch s.Driver {
	case DriverPostgres:
		src.dialect = postgresDialect
		src.db, err = openPostgresDB(s.DSN, s.Password, env)
	case DriverMariaDB:
		src.dialect = mariadbDialect
		src.db, err = openMariaDB(s.DSN, s.Password, env)
	default:
		return nil, &connector.SettingsError{Path: "settings.driver", Reason: fmt.Sprintf("a %s endpoint is not polled; poll a postgres or mariadb database", s.Driver)}
	}
	if err != nil {
		return nil, err
	}
	// The platform reads one entity at a time per poll; a few connections serve the
	// entities of one endpoint polled side by side.
	src.db.SetMaxOpenConns(4)
	src.db.SetMaxIdleConns(4)
	src.db.SetConnMaxIdleTime(5 * time.Minute)
	if err := src.db.PingContext(ctx); err != nil {
		err = fmt.Errorf("connecting to the %s database of settings.dsn (not shown: it may hold a password): %w; check the host, port, user, password and database in the URL", s.Driver, err)
		return nil, errors.Join(err, src.db.Close())
	}
	for name, p := range polls {
		src.entities[name] = src.statements(p)
	}
	return src, nil
}

// openPostgresDB opens a database/sql pool over pgx whose every connection dials through
// env's egress policy, with the endpoint's password or none, in a UTC session.
func openPostgresDB(dsn, password string, env connector.Env) (*sql.DB, error) {
	cfg, err := parsePostgresDSN(dsn)
	if err != nil {
		return nil, err
	}
	cc := cfg.ConnConfig
	cc.Password = password
	cc.LookupFunc = func(_ context.Context, host string) ([]string, error) { return []string{host}, nil }
	cc.DialFunc = env.Egress.Dialer(env.Tenant, database(cfg)).DialContext
	// A timestamp without time zone is taken to hold UTC, as now() is in a UTC session.
	cc.RuntimeParams["timezone"] = "UTC"
	// Statements are described on every run: SELECT * sees a column added to the table
	// while the source runs, where a cached statement would fail once on it.
	cc.DefaultQueryExecMode = pgx.QueryExecModeDescribeExec
	return stdlib.OpenDB(*cc), nil
}

// statements builds p's queries. Rows whose key or change column is NULL are not read: they
// have no place in the order (a row is read once its change column is set).
func (s *Source) statements(p poll) *polled {
	d := s.dialect
	table, key, change := s.table(p.Table), d.quote(p.Key), d.quote(p.Change)
	build := func(after bool) string {
		var q strings.Builder
		n := 0
		param := func() string { n++; return d.param(n) }
		fmt.Fprintf(&q, "SELECT * FROM %s WHERE %s IS NOT NULL AND %s IS NOT NULL", table, change, key)
		if after {
			// (change, key) > (c, k), written so that both databases range-scan an
			// index on (change, key): change >= c bounds the scan.
			c1, c2, k := param(), param(), param()
			fmt.Fprintf(&q, " AND %s >= %s AND (%s > %s OR %s > %s)", change, c1, change, c2, key, k)
		}
		if p.Kind == ChangeTimestamp && p.Settle > 0 {
			fmt.Fprintf(&q, " AND %s < %s", change, d.horizon(param()))
		}
		fmt.Fprintf(&q, " ORDER BY %s, %s LIMIT %s", change, key, param())
		return q.String()
	}
	cols := key + ", " + change
	if p.Tombstone != "" {
		cols += ", " + d.quote(p.Tombstone)
	}
	return &polled{poll: p, first: build(false), next: build(true),
		check: fmt.Sprintf("SELECT %s FROM %s WHERE 1 = 0", cols, table)}
}

func (s *Source) table(t string) string {
	n := parseTable(t)
	if n.schema == "" {
		return s.dialect.quote(n.name)
	}
	return s.dialect.quote(n.schema) + "." + s.dialect.quote(n.name)
}

// Read implements connector.Source: the changes of entity after cursor, at most a page of
// them, in (change, key) order.
func (s *Source) Read(ctx context.Context, entity, cur string) (connector.Page, error) {
	p, ok := s.entities[entity]
	if !ok {
		return connector.Page{}, fmt.Errorf("reading entity %q: this sql endpoint does not poll it; settings.poll has %s", entity, strings.Join(slices.Sorted(maps.Keys(s.entities)), ", "))
	}
	after, from, err := parseCursor(cur, p.poll)
	if err != nil {
		return connector.Page{}, err
	}
	query, args := p.first, make([]any, 0, 5)
	if from {
		query = p.next
		c := changeArg(after.Change, p.Kind)
		args = append(args, c, c, after.keyArg())
	}
	if p.Kind == ChangeTimestamp && p.Settle > 0 {
		args = append(args, p.Settle.Microseconds())
	}
	args = append(args, p.PageSize+1)

	release, err := s.budget.Acquire(ctx)
	if err != nil {
		return connector.Page{}, fmt.Errorf("reading entity %s: waiting for the endpoint's budget: %w", entity, err)
	}
	defer release()
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return connector.Page{}, fmt.Errorf("reading entity %s from table %s (settings.poll.%s): %w", entity, p.Table, entity, err)
	}
	defer rows.Close()
	page, err := s.page(p, rows, cur)
	if err != nil {
		return connector.Page{}, fmt.Errorf("reading entity %s from table %s (settings.poll.%s): %w", entity, p.Table, entity, err)
	}
	return page, nil
}

// changeArg is a cursor's change value as a query argument of the change column's type.
func changeArg(v int64, kind string) any {
	if kind == ChangeTimestamp {
		return time.UnixMicro(v).UTC()
	}
	return v
}

// page turns the rows of one query into a page: at most p.PageSize changes, and More when
// the query found one row more.
func (s *Source) page(p *polled, rows *sql.Rows, cur string) (connector.Page, error) {
	types, err := rows.ColumnTypes()
	if err != nil {
		return connector.Page{}, err
	}
	names := make([]string, len(types))
	kinds := make([]columnKind, len(types))
	for i, t := range types {
		names[i], kinds[i] = t.Name(), kindOf(t.DatabaseTypeName())
	}
	keyAt, changeAt, tombAt := column(names, p.Key), column(names, p.Change), -1
	if p.Tombstone != "" {
		if tombAt = column(names, p.Tombstone); tombAt < 0 {
			return connector.Page{}, fmt.Errorf("the table has no column %q (settings.poll.%s.tombstone_column); name the column that marks a row deleted, or leave it out", p.Tombstone, p.Entity)
		}
	}
	if keyAt < 0 || changeAt < 0 {
		// The query names both columns, so a table without them fails before this.
		return connector.Page{}, fmt.Errorf("the rows lack column %q or %q", p.Key, p.Change)
	}

	page := connector.Page{Cursor: cur}
	values := make([]any, len(names))
	ptrs := make([]any, len(names))
	for i := range values {
		ptrs[i] = &values[i]
	}
	var (
		last    cursor
		payload []byte
	)
	for rows.Next() {
		if len(page.Changes) == p.PageSize {
			page.More = true
			break
		}
		if err := rows.Scan(ptrs...); err != nil {
			return connector.Page{}, err
		}
		key, isInt, err := keyText(values[keyAt])
		if err != nil {
			return connector.Page{}, fmt.Errorf("key column %q (settings.poll.%s.key_column): %w", p.Key, p.Entity, err)
		}
		c := connector.Change{Key: key}
		switch p.Kind {
		case ChangeTimestamp:
			at, ok := values[changeAt].(time.Time)
			if !ok {
				return connector.Page{}, fmt.Errorf("change column %q of row %s holds %s values, not timestamps; name an updated-at column in settings.poll.%s.change_column, or set change_type: sequence for an increasing integer", p.Change, key, types[changeAt].DatabaseTypeName(), p.Entity)
			}
			c.Version, c.OccurredAt = at.UnixMicro(), at.UTC()
		default:
			seq, ok := sequence(values[changeAt])
			if !ok {
				return connector.Page{}, fmt.Errorf("change column %q of row %s holds %s values, not integers; name a sequence column in settings.poll.%s.change_column, or set change_type: timestamp for an updated-at column", p.Change, key, types[changeAt].DatabaseTypeName(), p.Entity)
			}
			c.Version = seq
		}
		if tombAt >= 0 {
			c.Delete = deleted(values[tombAt])
		}
		payload = payload[:0]
		payload = append(payload, '{')
		for i, v := range values {
			if i > 0 {
				payload = append(payload, ',')
			}
			payload = appendString(payload, names[i])
			payload = append(payload, ':')
			payload = appendJSON(payload, v, kinds[i])
		}
		payload = append(payload, '}')
		c.Payload = bytes.Clone(payload)
		page.Changes = append(page.Changes, c)
		last = cursor{Entity: p.Entity, Kind: p.Kind, Change: c.Version, Key: key, Int: isInt}
	}
	if err := rows.Err(); err != nil {
		return connector.Page{}, err
	}
	if len(page.Changes) > 0 {
		page.Cursor = last.String()
	}
	return page, nil
}

// column finds a column by name: as written first, then as MariaDB matches names, without
// regard to case.
func column(names []string, name string) int {
	if i := slices.Index(names, name); i >= 0 {
		return i
	}
	return slices.IndexFunc(names, func(n string) bool { return strings.EqualFold(n, name) })
}

// keyText is a key value as the change's key; isInt says the column is an integer one, so
// that the cursor binds it as a number.
func keyText(v any) (key string, isInt bool, err error) {
	switch v := v.(type) {
	case int64:
		return strconv.FormatInt(v, 10), true, nil
	case int32:
		return strconv.FormatInt(int64(v), 10), true, nil
	case uint64:
		return strconv.FormatUint(v, 10), v <= math.MaxInt64, nil
	case string:
		return v, false, nil
	case []byte:
		return string(v), false, nil
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano), false, nil
	case nil:
		return "", false, errors.New("a row has no key (NULL)")
	}
	return "", false, fmt.Errorf("holds %T values, which are not keys; name a text or integer column", v)
}

// sequence reads a sequence column's value.
func sequence(v any) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, true
	case int32:
		return int64(v), true
	case uint64:
		return int64(v), v <= math.MaxInt64
	case []byte:
		n, err := strconv.ParseInt(string(v), 10, 64)
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// deleted reads a tombstone column: NULL, false, 0, the empty text, "0", "f" and "false"
// (and BIT zeros) mean the row is live; anything else, such as true, 1 or a deleted_at
// timestamp, means it is deleted.
func deleted(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case int64:
		return v != 0
	case int32:
		return v != 0
	case uint64:
		return v != 0
	case float64:
		return v != 0
	case string:
		return deletedText(v)
	case []byte:
		if len(v) > 0 && !bytes.ContainsFunc(v, func(r rune) bool { return r != 0 }) {
			return false // BIT(n) zeros
		}
		return deletedText(string(v))
	}
	return true
}

// deletedText reports whether text in a tombstone column marks the row deleted.
func deletedText(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "0", "f", "false", "n", "no":
		return false
	}
	return true
}

// Check implements connector.Source: the database answers, and every entity's table has its
// key, change and tombstone columns.
func (s *Source) Check(ctx context.Context) error {
	release, err := s.budget.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("checking the %s source: waiting for the endpoint's budget: %w", s.driver, err)
	}
	defer release()
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("connecting to the %s database of settings.dsn: %w", s.driver, err)
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(s.entities)) {
		p := s.entities[name]
		rows, err := s.db.QueryContext(ctx, p.check)
		if err != nil {
			errs = append(errs, fmt.Errorf("settings.poll.%s: reading columns %s, %s of table %s: %w; check the table and column names", name, p.Key, p.Change, p.Table, err))
			continue
		}
		_ = rows.Close()
	}
	return errors.Join(errs...)
}

// Close implements connector.Source.
func (s *Source) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing the %s source's connections: %w", s.driver, err)
	}
	return nil
}
