package sql

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/syncline/syncline/pkg/connector"
)

// sqliteStore writes a batch in one transaction through one prepared statement per field set.
// SQLite runs in-process, so a statement per row costs no round trip, and a refused row rolls
// back only its own statement: the transaction goes on without savepoints.
type sqliteStore struct {
	db     *sql.DB
	table  string // quoted
	schema string // for the pragma functions, which take names unquoted
	name   string
	key    string // unquoted
}

var _ store = (*sqliteStore)(nil)

// openSQLite opens the database file. The busy timeout lets a push wait for a writer in
// another process instead of failing, and immediate transactions take the write lock at BEGIN,
// so two writers never deadlock upgrading a read lock.
//
// The file is where env's egress policy puts it: a relative path in the tenant's folder,
// which is made the first time.
func openSQLite(dsn string, table tableName, key string, env connector.Env) (*sqliteStore, error) {
	given, query, err := parseSQLiteDSN(dsn)
	if err != nil {
		return nil, err
	}
	path, err := env.Egress.ResolvePath(env.Tenant, given)
	if err != nil {
		return nil, &connector.SettingsError{Path: "settings.dsn", Reason: err.Error()}
	}
	folder, err := env.Egress.Folder(env.Tenant)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(folder, 0o700); err != nil {
		return nil, fmt.Errorf("creating the tenant's folder for sqlite files: %w", err)
	}
	if query != "" {
		query += "&"
	}
	db, err := sql.Open("sqlite", path+"?"+query+"_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("opening sqlite: %w", err)
	}
	// SQLite has one writer at a time: one connection queues concurrent pushes in the pool
	// instead of failing them with SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	schema := table.schema
	if schema == "" {
		schema = "main"
	}
	return &sqliteStore{db: db, table: table.quoted(), schema: schema, name: table.name, key: key}, nil
}

// ping opens the file, which sql.Open does not.
func (s *sqliteStore) ping(ctx context.Context) error {
	return s.db.PingContext(ctx)
}

func (s *sqliteStore) columns(ctx context.Context) (map[string]bool, bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?, ?)`, s.name, s.schema)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	cols := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, false, err
		}
		cols[name] = true
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	// Every SQLite table has a column, so none means no table.
	return cols, len(cols) > 0, nil
}

// keyIsUnique accepts the key as the table's only primary key column (an INTEGER PRIMARY
// KEY has no index of its own) or as the only column of a full unique index.
func (s *sqliteStore) keyIsUnique(ctx context.Context) (bool, error) {
	var unique bool
	err := s.db.QueryRowContext(ctx, `
		SELECT (SELECT count(*) FROM pragma_table_info(?1, ?2) WHERE pk > 0) = 1
		       AND EXISTS (SELECT 1 FROM pragma_table_info(?1, ?2) WHERE pk > 0 AND name = ?3)
		    OR EXISTS (
		       SELECT 1 FROM pragma_index_list(?1, ?2) AS il
		       WHERE il."unique" = 1 AND il.partial = 0
		         AND (SELECT count(*) FROM pragma_index_info(il.name, ?2)) = 1
		         AND (SELECT name FROM pragma_index_info(il.name, ?2)) = ?3)`,
		s.name, s.schema, s.key).Scan(&unique)
	return unique, err
}

func (s *sqliteStore) createTable(ctx context.Context) error {
	_, err := s.db.ExecContext(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (%s TEXT NOT NULL PRIMARY KEY, %s INTEGER, %s TEXT)`,
		s.table, quote(s.key), quote(sourceVersionColumn), quote(syncedAtColumn)))
	return err
}

// addColumns adds untyped columns for fields, which store every value as it is bound, and
// typed ones for the target's own columns. A column another process added first is fine.
func (s *sqliteStore) addColumns(ctx context.Context, cols []newColumn) error {
	for _, c := range cols {
		def := quote(c.name)
		switch c.typ {
		case columnVersion:
			def += " INTEGER"
		case columnTimestamp:
			def += " TEXT"
		}
		_, err := s.db.ExecContext(ctx, "ALTER TABLE "+s.table+" ADD COLUMN "+def)
		if err != nil && !strings.Contains(err.Error(), "duplicate column name") {
			return err
		}
	}
	return nil
}

func (s *sqliteStore) write(ctx context.Context, rows []row, m managed, results []connector.Result) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	// After Commit this is a no-op; after a failure the error worth returning is the first.
	defer func() { _ = tx.Rollback() }()
	stmts := map[string]*sql.Stmt{}
	defer func() {
		for _, stmt := range stmts {
			_ = stmt.Close() // closing a statement of a finished transaction cannot fail usefully
		}
	}()
	args := make([]any, 0, 16)
	// One time for the whole batch: it was written in one transaction, and formatting it in
	// SQL for every row costs more than the row's insert.
	syncedAt := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	for _, r := range rows {
		shape := "delete"
		if r.op == connector.WriteUpdate {
			shape = "upsert\x00" + r.shape
		}
		stmt, ok := stmts[shape]
		if !ok {
			query := s.deleteSQL()
			if r.op == connector.WriteUpdate {
				query = s.upsertSQL(r.fields, m)
			}
			if stmt, err = tx.PrepareContext(ctx, query); err != nil {
				return err
			}
			stmts[shape] = stmt
		}
		args = append(args[:0], r.key)
		if r.op == connector.WriteUpdate {
			for _, f := range r.fields {
				args = append(args, sqliteValue(f.value))
			}
			if m.version {
				args = append(args, r.version)
			}
			if m.syncedAt {
				args = append(args, syncedAt)
			}
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			if !refusedBySQLite(err) {
				return err
			}
			results[r.index].Err = fmt.Errorf("record %q: the database refused it: %w; fix the mapping or the table, then replay the record", r.key, err)
			continue
		}
		results[r.index].TargetID = r.key
	}
	return tx.Commit()
}

// upsertSQL never lets an older source version overwrite a newer one; an equal version
// overwrites, so a retried batch writes the same values again.
func (s *sqliteStore) upsertSQL(fields []field, m managed) string {
	cols := []string{quote(s.key)}
	values := []string{"?"}
	var set []string
	add := func(col, value string) {
		cols = append(cols, col)
		values = append(values, value)
		set = append(set, col+" = excluded."+col)
	}
	for _, f := range fields {
		add(quote(f.name), "?")
	}
	if m.version {
		add(quote(sourceVersionColumn), "?")
	}
	if m.syncedAt {
		add(quote(syncedAtColumn), "?")
	}
	conflict := "DO NOTHING"
	if len(set) > 0 {
		conflict = "DO UPDATE SET " + strings.Join(set, ", ")
		if m.version {
			v := quote(sourceVersionColumn)
			conflict += " WHERE t." + v + " IS NULL OR t." + v + " <= excluded." + v
		}
	}
	return fmt.Sprintf(`INSERT INTO %s AS t (%s) VALUES (%s) ON CONFLICT (%s) %s`,
		s.table, strings.Join(cols, ", "), strings.Join(values, ", "), quote(s.key), conflict)
}

func (s *sqliteStore) deleteSQL() string {
	return fmt.Sprintf(`DELETE FROM %s WHERE %s = ?`, s.table, quote(s.key))
}

// sqliteValue binds a JSON value as the SQLite value closest to it: text, an integer when the
// number has no fraction and fits, a real otherwise, 1 or 0 for booleans, NULL, and objects
// and arrays as compact JSON text (which SQLite's JSON functions read).
func sqliteValue(v json.RawMessage) any {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return nil
	}
	switch v[0] {
	case '"':
		return unquote(v)
	case 't':
		return true
	case 'f':
		return false
	case 'n':
		return nil
	case '{', '[':
		var compact bytes.Buffer
		if json.Compact(&compact, v) != nil {
			return string(v)
		}
		return compact.String()
	}
	if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(string(v), 64); err == nil {
		return f
	}
	return string(v)
}

func (s *sqliteStore) close() error {
	return s.db.Close()
}

// refusedBySQLite reports whether err is SQLite refusing one row's data (a constraint, a
// type a STRICT table rejects, a value too big), which no retry fixes, rather than the batch
// failing.
func refusedBySQLite(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() & 0xff {
	case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG:
		return true
	}
	return false
}

// findChunk is how many keys one lookup binds, well under SQLite's limit on parameters.
const findChunk = 500

// find reads the rows of keys, a chunk of keys per query, and renders each row's columns
// (but the key and the target's own) as a JSON object.
func (s *sqliteStore) find(ctx context.Context, keys []string) (map[string]json.RawMessage, error) {
	found := make(map[string]json.RawMessage, len(keys))
	for chunk := range slices.Chunk(keys, findChunk) {
		args := make([]any, len(chunk))
		for i, k := range chunk {
			args[i] = k
		}
		query := fmt.Sprintf(`SELECT * FROM %s WHERE %s IN (?%s)`, s.table, quote(s.key), strings.Repeat(",?", len(chunk)-1))
		if err := s.findRows(ctx, query, args, found); err != nil {
			return nil, err
		}
	}
	return found, nil
}

func (s *sqliteStore) findRows(ctx context.Context, query string, args []any, found map[string]json.RawMessage) error {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	values := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range values {
		ptrs[i] = &values[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		fields := make(map[string]any, len(cols))
		var key string
		for i, c := range cols {
			switch c {
			case s.key:
				key = fmt.Sprint(values[i])
			case sourceVersionColumn, syncedAtColumn:
			default:
				if b, ok := values[i].([]byte); ok {
					values[i] = string(b)
				}
				fields[c] = values[i]
			}
		}
		b, err := json.Marshal(fields)
		if err != nil {
			return fmt.Errorf("rendering the row of key %q: %w", key, err)
		}
		found[key] = b
	}
	return rows.Err()
}
