package sql_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	sqltarget "github.com/syncline/syncline/connectors/sql"
	"github.com/syncline/syncline/pkg/connector"
)

func TestRegisterValidatesSettings(t *testing.T) {
	r := connector.NewRegistry()
	if err := sqltarget.Register(r); err != nil {
		t.Fatalf("Register: %v", err)
	}
	tests := []struct {
		name     string
		settings map[string]any
		want     string // empty: valid
	}{
		{"minimal", map[string]any{"driver": "sqlite", "dsn": "x.db", "table": "orders"}, ""},
		{"schema-qualified", map[string]any{"driver": "postgres", "dsn": "postgres://h/db", "table": "sales.orders", "key_column": "ref", "create_table": true}, ""},
		{"missing table", map[string]any{"driver": "sqlite", "dsn": "x.db"}, "settings.table: required"},
		{"unknown driver", map[string]any{"driver": "mysql", "dsn": "x", "table": "t"}, `settings.driver: "mysql" is not one of postgres, sqlite, mariadb`},
		{"unknown setting", map[string]any{"driver": "sqlite", "dsn": "x", "table": "t", "tabel": "t"}, "settings.tabel: unknown setting; sql settings are create_table, driver, dsn, key_column, max_concurrency, max_requests_per_second, password, poll, table"},
		{"table with SQL in it", map[string]any{"driver": "sqlite", "dsn": "x", "table": "t; DROP TABLE users"}, `settings.table: "t; DROP TABLE users" is not valid`},
		{"three-part table", map[string]any{"driver": "sqlite", "dsn": "x", "table": "a.b.c"}, "settings.table:"},
		{"table starting with a digit", map[string]any{"driver": "sqlite", "dsn": "x", "table": "1orders"}, "settings.table:"},
		{"key column with a dash", map[string]any{"driver": "sqlite", "dsn": "x", "table": "t", "key_column": "ext-ref"}, "settings.key_column:"},
		{"create_table as text", map[string]any{"driver": "sqlite", "dsn": "x", "table": "t", "create_table": "yes"}, "settings.create_table: must be true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.ValidateSettings(sqltarget.Type, tt.settings)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ValidateSettings: %v", err)
				}
				if _, ok := got["key_column"]; !ok {
					t.Fatalf("settings %v lack the key_column default", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ValidateSettings error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestTargetRefusesMariaDB: a mariadb endpoint is a source only; the target refuses it where
// a flow would use it.
func TestTargetRefusesMariaDB(t *testing.T) {
	r := connector.NewRegistry()
	if err := sqltarget.Register(r); err != nil {
		t.Fatalf("Register: %v", err)
	}
	for _, tt := range []struct {
		name     string
		settings map[string]any
		want     string
	}{
		{"mariadb", map[string]any{"driver": "mariadb", "dsn": "mariadb://u@h/db", "table": "t"}, "settings.driver: a mariadb endpoint is a polled source only, not a flow's target; write to postgres or sqlite instead"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Capabilities(sqltarget.Type, tt.settings, "customer")
			var se *connector.SettingsError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Capabilities error = %v, want a SettingsError containing %q", err, tt.want)
			}
			s := sqltarget.Settings{Driver: tt.settings["driver"].(string), DSN: tt.settings["dsn"].(string)}
			s.Table, _ = tt.settings["table"].(string)
			target, err := sqltarget.Open(context.Background(), s, testEnv(t, s))
			if err == nil {
				_ = target.Close()
				t.Fatal("Open succeeded, want a refusal")
			}
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open error = %v, want a SettingsError containing %q", err, tt.want)
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	const password = "s3cret-pw"
	tests := []struct {
		name   string
		driver string
		// setup prepares the database and returns the settings to open with.
		setup func(t *testing.T, b backend) sqltarget.Settings
		want  []string
	}{
		{
			name: "a table with an injected name",
			setup: func(t *testing.T, b backend) sqltarget.Settings {
				return sqltarget.Settings{Driver: b.driver, DSN: "unused", Table: `orders"; DROP TABLE users; --`}
			},
			want: []string{"settings.table:"},
		},
		{
			name: "a missing table when the target may not create it",
			setup: func(t *testing.T, b backend) sqltarget.Settings {
				return sqltarget.Settings{Driver: b.driver, DSN: b.newDSN(t), Table: "orders"}
			},
			want: []string{`table "orders" (settings.table) does not exist`, "settings.create_table: true"},
		},
		{
			name: "a table without the key column",
			setup: func(t *testing.T, b backend) sqltarget.Settings {
				dsn := b.newDSN(t)
				exec(t, b.db(t, dsn), `CREATE TABLE orders (id TEXT PRIMARY KEY)`)
				return sqltarget.Settings{Driver: b.driver, DSN: dsn, Table: "orders", CreateTable: true}
			},
			want: []string{`table "orders" has no column "external_ref" (settings.key_column)`},
		},
		{
			name: "a key column that is not unique",
			setup: func(t *testing.T, b backend) sqltarget.Settings {
				dsn := b.newDSN(t)
				exec(t, b.db(t, dsn), `CREATE TABLE orders (id INTEGER PRIMARY KEY, external_ref TEXT)`,
					`CREATE INDEX orders_ref ON orders (external_ref)`)
				return sqltarget.Settings{Driver: b.driver, DSN: dsn, Table: "orders"}
			},
			want: []string{`column "external_ref" of table "orders" has no unique index`, `CREATE UNIQUE INDEX ON "orders" ("external_ref")`},
		},
		{
			name: "a key column unique only with another column",
			setup: func(t *testing.T, b backend) sqltarget.Settings {
				dsn := b.newDSN(t)
				exec(t, b.db(t, dsn), `CREATE TABLE orders (tenant TEXT, external_ref TEXT, UNIQUE (tenant, external_ref))`)
				return sqltarget.Settings{Driver: b.driver, DSN: dsn, Table: "orders"}
			},
			want: []string{"has no unique index of its own"},
		},
		{
			name:   "a postgres URL that does not parse",
			driver: sqltarget.DriverPostgres,
			setup: func(t *testing.T, b backend) sqltarget.Settings {
				return sqltarget.Settings{Driver: b.driver, DSN: "postgres://admin@db:notaport/x", Password: password, Table: "t"}
			},
			want: []string{"settings.dsn: not a valid postgres URL"},
		},
		{
			name:   "a postgres server that does not answer",
			driver: sqltarget.DriverPostgres,
			setup: func(t *testing.T, b backend) sqltarget.Settings {
				return sqltarget.Settings{Driver: b.driver, DSN: "postgres://admin@127.0.0.1:1/x?connect_timeout=2", Password: password, Table: "t"}
			},
			want: []string{"connecting to the postgres database of settings.dsn", "check the host"},
		},
		{
			name:   "a password in the DSN",
			driver: sqltarget.DriverPostgres,
			setup: func(t *testing.T, b backend) sqltarget.Settings {
				return sqltarget.Settings{Driver: b.driver, DSN: "postgres://admin:" + password + "@127.0.0.1:1/x", Table: "t"}
			},
			want: []string{"settings.dsn", "without a password", "credential password"},
		},
		{
			name:   "a sqlite file in a folder that does not exist",
			driver: sqltarget.DriverSQLite,
			setup: func(t *testing.T, b backend) sqltarget.Settings {
				return sqltarget.Settings{Driver: b.driver, DSN: filepath.Join(password, "x.db"), Table: "t", CreateTable: true}
			},
			want: []string{"connecting to the sqlite database of settings.dsn", "folder exists"},
		},
	}
	for _, b := range backends() {
		t.Run(b.driver, func(t *testing.T) {
			for _, tt := range tests {
				if tt.driver != "" && tt.driver != b.driver {
					continue
				}
				t.Run(tt.name, func(t *testing.T) {
					s := tt.setup(t, b)
					target, err := sqltarget.Open(context.Background(), s, testEnv(t, s))
					if err == nil {
						_ = target.Close()
						t.Fatal("Open succeeded, want an error")
					}
					for _, want := range tt.want {
						if !strings.Contains(err.Error(), want) {
							t.Errorf("error %q lacks %q", err, want)
						}
					}
					if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), s.DSN) {
						t.Errorf("error %q shows the DSN", err)
					}
				})
			}
		})
	}
}

func TestOpenThroughTheRegistry(t *testing.T) {
	r := connector.NewRegistry()
	if err := sqltarget.Register(r); err != nil {
		t.Fatalf("Register: %v", err)
	}
	dsn := filepath.Join(t.TempDir(), "target.db")
	env := testEnv(t, sqltarget.Settings{Driver: sqltarget.DriverSQLite, DSN: dsn})
	target, err := r.OpenTarget(context.Background(), sqltarget.Type, map[string]any{"driver": "sqlite", "dsn": dsn, "table": "orders", "create_table": true}, env)
	if err != nil {
		t.Fatalf("OpenTarget: %v", err)
	}
	t.Cleanup(func() { _ = target.Close() })
	results, err := target.Write(context.Background(), "order", []connector.Write{upsert("o1", 1, `{"total": 12.5}`)})
	if err != nil || results[0].Err != nil {
		t.Fatalf("Write: %v, %v", err, results)
	}

	_, err = r.OpenTarget(context.Background(), sqltarget.Type, map[string]any{"driver": "sqlite", "dsn": dsn, "table": "missing"}, env)
	var se *connector.SettingsError
	if err == nil || errors.As(err, &se) || !strings.Contains(err.Error(), "opening sql target:") {
		t.Fatalf("OpenTarget of a missing table = %v, want a wrapped opening error", err)
	}
}
