package sql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/sqlstore"
)

// postgresStore writes a batch with one statement per round and field set, each binding its rows
// as a single JSON array that jsonb_populate_recordset turns into rows of the table's own row
// type. One parameter, whatever the batch size, keeps clear of the 65535-parameter limit, and
// PostgreSQL converts each value to its column's type, so the target needs no type mapping.
// All statements go out in one pipelined batch, which PostgreSQL runs as one implicit
// transaction: one round trip for the whole push.
type postgresStore struct {
	pool  *pgxpool.Pool
	table string // quoted, also as to_regclass reads it
	key   string // unquoted
}

var _ store = (*postgresStore)(nil)

func openPostgres(ctx context.Context, dsn, password string, table tableName, key string, env connector.Env) (*postgresStore, error) {
	cfg, err := parsePostgresDSN(dsn)
	if err != nil {
		return nil, err
	}
	// The endpoint's own password or none: never one pgx found in the connector's
	// environment or password file, which are the operator's.
	cfg.ConnConfig.Password = password
	// Every connection goes through the egress policy's dialer, which looks the host up
	// itself and checks the address it connects to; pgx then looks nothing up.
	cfg.ConnConfig.LookupFunc = func(_ context.Context, host string) ([]string, error) { return []string{host}, nil }
	cfg.ConnConfig.DialFunc = env.Egress.Dialer(env.Tenant, database(cfg)).DialContext
	if !strings.Contains(dsn, "pool_max_conns") {
		// One connection per partition pushing at once, and some spare:
		// pgx's default (4 on a small machine) would make pushes queue.
		cfg.MaxConns = 16
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	return &postgresStore{pool: pool, table: table.quoted(), key: key}, nil
}

func (p *postgresStore) ping(ctx context.Context) error {
	return p.pool.Ping(ctx)
}

func (p *postgresStore) columns(ctx context.Context) (map[string]bool, bool, error) {
	var (
		exists bool
		names  []string
	)
	err := p.pool.QueryRow(ctx, `
		SELECT c.oid IS NOT NULL,
		       ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped)
		FROM (SELECT to_regclass($1) AS oid) AS c`, p.table).Scan(&exists, &names)
	if err != nil {
		return nil, false, err
	}
	cols := make(map[string]bool, len(names))
	for _, n := range names {
		cols[n] = true
	}
	return cols, exists, nil
}

func (p *postgresStore) keyIsUnique(ctx context.Context) (bool, error) {
	var unique bool
	err := p.pool.QueryRow(ctx, `
		SELECT EXISTS (
			SELECT 1 FROM pg_index i
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
			WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indnkeyatts = 1
			  AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = $2)`, p.table, p.key).Scan(&unique)
	return unique, err
}

func (p *postgresStore) createTable(ctx context.Context) error {
	_, err := p.pool.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (%s TEXT PRIMARY KEY, %s BIGINT, %s TIMESTAMPTZ)`,
		p.table, quote(p.key), quote(sourceVersionColumn), quote(syncedAtColumn)))
	return err
}

// addColumns adds every column in one statement; IF NOT EXISTS lets replicas that meet the
// same new field at once both succeed.
func (p *postgresStore) addColumns(ctx context.Context, cols []newColumn) error {
	adds := make([]string, len(cols))
	for i, c := range cols {
		adds[i] = "ADD COLUMN IF NOT EXISTS " + quote(c.name) + " " + postgresType(c.typ)
	}
	_, err := p.pool.Exec(ctx, "ALTER TABLE "+p.table+" "+strings.Join(adds, ", "))
	return err
}

func postgresType(t columnType) string {
	switch t {
	case columnNumber:
		return "NUMERIC"
	case columnBool:
		return "BOOLEAN"
	case columnJSON:
		return "JSONB"
	case columnVersion:
		return "BIGINT"
	case columnTimestamp:
		return "TIMESTAMPTZ"
	}
	return "TEXT"
}

// write sends the whole batch at once. When the database refuses a record, the batch is
// rolled back as a whole, and written again in halves under savepoints until every refused
// record is found: a few extra statements per refused record instead of a round trip per row.
func (p *postgresStore) write(ctx context.Context, rows []row, m managed, results []connector.Result) error {
	err := p.pool.SendBatch(ctx, p.batch(rows, m)).Close()
	switch {
	case err == nil:
		succeed(rows, results)
		return nil
	case !refusedByPostgres(err):
		return err
	case len(rows) == 1:
		results[rows[0].index].Err = postgresRefusal(rows[0], err)
		return nil
	}
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return err
	}
	// After Commit this is a no-op; after a failure the error worth returning is the first.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := p.bisect(ctx, tx, rows, m, results); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// bisect writes the two halves of rows, which failed together, each under its own savepoint,
// and splits again a half that fails because of a refused record. Halves go in order, so
// records of one key are still applied in batch order.
func (p *postgresStore) bisect(ctx context.Context, tx pgx.Tx, rows []row, m managed, results []connector.Result) error {
	mid := len(rows) / 2
	for _, part := range [][]row{rows[:mid], rows[mid:]} {
		err := p.tryPart(ctx, tx, part, m)
		switch {
		case err == nil:
			succeed(part, results)
		case !refusedByPostgres(err):
			return err
		case len(part) == 1:
			results[part[0].index].Err = postgresRefusal(part[0], err)
		default:
			if err := p.bisect(ctx, tx, part, m, results); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *postgresStore) tryPart(ctx context.Context, tx pgx.Tx, rows []row, m managed) error {
	savepoint, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	if err := savepoint.SendBatch(ctx, p.batch(rows, m)).Close(); err != nil {
		if rollbackErr := savepoint.Rollback(ctx); rollbackErr != nil {
			return rollbackErr
		}
		return err
	}
	return savepoint.Commit(ctx)
}

// batch builds the statements for rows. A statement may not touch one key twice, so rows are
// split into rounds (the n-th record of each key goes to round n) that run in order; within a
// round, keys are distinct and upserts are grouped by field set, since a statement sets the
// same columns on every row.
func (p *postgresStore) batch(rows []row, m managed) *pgx.Batch {
	b := &pgx.Batch{}
	keyOnly := false
	for _, round := range rounds(rows) {
		var (
			deletes []row
			shapes  []string
			groups  = map[string][]row{}
		)
		for _, r := range round {
			if r.op == connector.WriteDelete {
				deletes = append(deletes, r)
				continue
			}
			if _, ok := groups[r.shape]; !ok {
				shapes = append(shapes, r.shape)
			}
			groups[r.shape] = append(groups[r.shape], r)
		}
		for _, shape := range shapes {
			group := groups[shape]
			b.Queue(p.upsertSQL(group[0].fields, m), p.recordset(group, m, true))
		}
		if len(deletes) > 0 {
			if !keyOnly {
				b.Queue(pgProbeKeysOnly)
				keyOnly = true
			}
			b.Queue(fmt.Sprintf(`DELETE FROM %s AS t USING jsonb_populate_recordset(NULL::%s, $1::jsonb) AS r WHERE t.%s = r.%s`,
				p.table, p.table, quote(p.key), quote(p.key)), p.recordset(deletes, m, false))
		}
	}
	return b
}

// pgProbeKeysOnly makes the rest of the batch's transaction find rows by key alone, for the
// delete's join. The delete is a prepared statement, and PostgreSQL keeps the generic plan it
// makes once the statement has run five times: made while the table was small, that plan hashes
// a sequential scan of the whole table, and keeps doing so when the table has grown (a plan made
// for the grown table does too for a large batch, as the planner prices many probes of the key
// above one scan). With scans and the other joins priced out, every plan probes the key's
// unique index once per record, whatever the table's size. set_config(…, true) lasts until the
// batch's transaction ends; the upserts that may follow have no plan to choose (their conflict
// check is the key's index), and a trigger of the table runs its own statements under the
// same settings, which only changes the plan of one that could use an index.
const pgProbeKeysOnly = `SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true),
       set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)`

// upsertSQL never lets an older source version overwrite a newer one; an equal version
// overwrites, so a retried batch writes the same values again.
func (p *postgresStore) upsertSQL(fields []field, m managed) string {
	cols := []string{quote(p.key)}
	values := []string{"r." + quote(p.key)}
	var set []string
	add := func(col, value string) {
		cols = append(cols, col)
		values = append(values, value)
		set = append(set, col+" = EXCLUDED."+col)
	}
	for _, f := range fields {
		add(quote(f.name), "r."+quote(f.name))
	}
	if m.version {
		add(quote(sourceVersionColumn), "r."+quote(sourceVersionColumn))
	}
	if m.syncedAt {
		add(quote(syncedAtColumn), "now()")
	}
	conflict := "DO NOTHING"
	if len(set) > 0 {
		conflict = "DO UPDATE SET " + strings.Join(set, ", ")
		if m.version {
			v := quote(sourceVersionColumn)
			conflict += " WHERE t." + v + " IS NULL OR t." + v + " <= EXCLUDED." + v
		}
	}
	return fmt.Sprintf(`INSERT INTO %s AS t (%s) SELECT %s FROM jsonb_populate_recordset(NULL::%s, $1::jsonb) AS r ON CONFLICT (%s) %s`,
		p.table, strings.Join(cols, ", "), strings.Join(values, ", "), p.table, quote(p.key), conflict)
}

// recordset encodes rows as the JSON array that jsonb_populate_recordset reads: the key, the
// version and, when withFields, every field as it came in the payload.
func (p *postgresStore) recordset(rows []row, m managed, withFields bool) []byte {
	size := 2
	for _, r := range rows {
		size += 64 + len(r.key)
		for _, f := range r.fields {
			size += len(f.name) + len(f.value) + 4
		}
	}
	buf := make([]byte, 0, size)
	buf = append(buf, '[')
	for i, r := range rows {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '{')
		buf = appendJSONString(buf, p.key)
		buf = append(buf, ':')
		buf = appendJSONString(buf, r.key)
		if m.version {
			buf = append(buf, `,"`+sourceVersionColumn+`":`...)
			buf = strconv.AppendInt(buf, r.version, 10)
		}
		if withFields {
			for _, f := range r.fields {
				buf = append(buf, ',')
				buf = appendJSONString(buf, f.name)
				buf = append(buf, ':')
				buf = append(buf, f.value...)
			}
		}
		buf = append(buf, '}')
	}
	return append(buf, ']')
}

// rounds splits rows so that no round holds a key twice: the n-th row of a key goes to round
// n, and running the rounds in order keeps every key's rows in batch order.
func rounds(rows []row) [][]row {
	seen := make(map[string]int, len(rows))
	var out [][]row
	for _, r := range rows {
		n := seen[r.key]
		seen[r.key] = n + 1
		if n == len(out) {
			out = append(out, nil)
		}
		out[n] = append(out[n], r)
	}
	return out
}

// appendJSONString appends s as a JSON string. Keys and field names are the only strings the
// target encodes itself; field values are passed on as they came in the payload.
func appendJSONString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', c)
		case c < 0x20:
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			buf = append(buf, c)
		}
	}
	return append(buf, '"')
}

func (p *postgresStore) close() error {
	p.pool.Close()
	return nil
}

// refusedByPostgres reports whether err is the database refusing one record's data, which no
// retry fixes, rather than the batch failing: a data exception (class 22), an integrity
// constraint (23), a value past a limit such as an index row's size (54000), or a trigger or
// rule of the table raising an error (class P0). Anything else fails the push as a whole, and
// a push that keeps failing pauses the flow until the target works.
func refusedByPostgres(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch c := pgErr.Code; {
	case strings.HasPrefix(c, "22"), strings.HasPrefix(c, "23"), strings.HasPrefix(c, "P0"), c == "54000":
		return true
	}
	return false
}

// refusal describes why the database refused a record. The PostgreSQL error is not wrapped:
// data exceptions quote the offending value, which may be personal data, and the error ends up
// in the API log, so the message is cut before the value.
func postgresRefusal(r row, err error) error {
	var pgErr *pgconn.PgError
	errors.As(err, &pgErr)
	msg := pgErr.Message
	switch {
	case strings.HasPrefix(pgErr.Code, "22"):
		msg, _, _ = strings.Cut(msg, ": ")
	case strings.HasPrefix(pgErr.Code, "P0"):
		// The table's own code wrote the message, and may have put the record's values in
		// it: say where it was raised instead.
		where, _, _ := strings.Cut(pgErr.Where, "\n")
		msg = "a trigger or rule of the table raised an error (" + where + "); its message is in the database's log"
	}
	return fmt.Errorf("record %q: the database refused it: %s (SQLSTATE %s); fix the mapping or the table, then replay the record", r.key, msg, pgErr.Code)
}

// find reads the rows of keys in one pipelined round trip, probing the key's index (see
// pgProbeKeysOnly) however large the table has grown.
func (p *postgresStore) find(ctx context.Context, keys []string) (map[string]json.RawMessage, error) {
	b := &pgx.Batch{}
	b.Queue(pgProbeKeysOnly)
	key := quote(p.key)
	b.Queue(fmt.Sprintf(`SELECT t.%s::text, to_jsonb(t) - $2::text - $3::text - $4::text FROM %s AS t WHERE t.%s = ANY($1::text[])`, key, p.table, key),
		sqlstore.Texts(keys), p.key, sourceVersionColumn, syncedAtColumn)
	res := p.pool.SendBatch(ctx, b)
	defer res.Close()
	if _, err := res.Exec(); err != nil {
		return nil, err
	}
	rows, err := res.Query()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := make(map[string]json.RawMessage, len(keys))
	for rows.Next() {
		var k string
		var fields []byte
		if err := rows.Scan(&k, &fields); err != nil {
			return nil, err
		}
		found[k] = fields
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return found, res.Close()
}
