package sql

import (
	"context"

	"github.com/syncline/syncline/pkg/connector"
)

// Type is the connector type name endpoints use for this connector.
const Type = "sql"

// The drivers a Settings.Driver can name. A mariadb endpoint is a polled source only.
const (
	DriverPostgres = "postgres"
	DriverSQLite   = "sqlite"
	DriverMariaDB  = "mariadb"
)

// The columns the target manages next to the record's fields. A table created by the target
// has both; a table the user created may have either or neither, and the target then writes
// what it finds.
const (
	sourceVersionColumn = "source_version"
	syncedAtColumn      = "synced_at"
	defaultKeyColumn    = "external_ref"
)

// tablePattern is a table name, optionally schema-qualified.
const tablePattern = identifierPattern + `(\.` + identifierPattern + `)?`

// identifierPattern is a SQL identifier that needs no quoting in any dialect and fits
// PostgreSQL's 63-byte limit; the target still quotes it, so it is used exactly as written.
const identifierPattern = `[A-Za-z_][A-Za-z0-9_]{0,62}`

// Settings configure one SQL target. See spec for what each means.
type Settings struct {
	Driver string
	// DSN is a postgres:// URL for postgres, a mariadb:// URL for mariadb and a file path
	// for sqlite. It holds no password: that is Password, a credential, encrypted at rest.
	DSN string
	// Password is the database user's password (a credential): empty connects without one
	// (a server that trusts the user). A password file or PGPASSWORD of the connector's host
	// is the operator's and never used for an endpoint.
	Password string
	// Table is the endpoint's table: the one the target writes, and the one a polled entity
	// reads unless settings.poll names its own.
	Table string
	// KeyColumn holds the source key; empty means "external_ref".
	KeyColumn   string
	CreateTable bool
}

// spec is the single source of truth for the settings: Register hands it to the registry, and
// Open checks Settings against it, so a setting the control plane accepts is one Open accepts.
func spec() connector.Spec {
	return connector.Spec{
		Type:     Type,
		Kind:     connector.KindTarget,
		Summary:  "Writes records as rows of one table in PostgreSQL or SQLite, upserted by the source key; as a source, polls tables or views in PostgreSQL or MariaDB for changed rows by an updated-at or sequence column.",
		KeyIsID:  true,
		Reaches:  reaches,
		Entities: targetEntities,
		Fields: []connector.Field{
			{Name: "driver", Type: connector.TypeString, Required: true, Enum: []string{DriverPostgres, DriverSQLite, DriverMariaDB},
				Summary: "the database: postgres or sqlite (a target or a polled source), or mariadb (a polled source only; MySQL servers speak the same protocol)"},
			{Name: "dsn", Type: connector.TypeString, Required: true, Secret: true, Pattern: `[^@]*|[a-z]+://[^:@/]*@.*`,
				Summary: "for postgres a postgres:// URL without a password (give the password as the credential password), for mariadb a mariadb://user@host:3306/database URL without a password (parameters tls, timeout, readTimeout, writeTimeout), for sqlite the database file's path in the tenant's folder (a relative path is in it), optionally followed by pragmas such as ?_pragma=journal_mode(WAL)"},
			{Name: "password", Type: connector.TypeString, Secret: true, Credential: true,
				Summary: "the database user's password: a credential, given under spec.credentials"},
			{Name: "table", Type: connector.TypeString, Required: true, Pattern: tablePattern,
				Summary: "the endpoint's table: the one a target writes, and the one a polled entity reads unless poll names its own; optionally schema-qualified (schema.table): letters, digits and _, not starting with a digit, used exactly as written"},
			{Name: "key_column", Type: connector.TypeString, Default: defaultKeyColumn, Pattern: identifierPattern,
				Summary: "the column that holds the source key; it needs a unique index of its own"},
			{Name: "create_table", Type: connector.TypeBool, Default: false,
				Summary: "create the table if it is missing and add a column for every new field of a record; when false, a field without a column fails its record"},
			{Name: "poll", Type: connector.TypeMap,
				Summary: pollSummary},
		},
	}
}

// Register registers the "sql" connector: the target with its spec and factory, and the
// polled source (postgres and mariadb tables and views, per entity of settings.poll).
func Register(r *connector.Registry) error {
	err := r.RegisterTarget(spec(), func(ctx context.Context, settings map[string]any, env connector.Env) (connector.Target, error) {
		return Open(ctx, settingsFrom(settings), env)
	})
	if err != nil {
		return err
	}
	return r.RegisterPolling(Type, openSource, sourceEntities)
}

// targetEntities says what a target endpoint serves: any entity, in its one table.
func targetEntities(settings map[string]any) ([]connector.Capabilities, error) {
	s := settingsFrom(settings)
	if err := s.checkTarget(); err != nil {
		return nil, err
	}
	return []connector.Capabilities{{Entity: connector.AnyEntity, FindBy: []string{connector.FieldExternalRef},
		Read: true, Create: true, Update: true, Delete: true}}, nil
}

// checkTarget checks what a target needs that a source does not: a driver it writes to.
func (s *Settings) checkTarget() error {
	if s.Driver == DriverMariaDB {
		return &connector.SettingsError{Path: "settings.driver", Reason: "a mariadb endpoint is a polled source only, not a flow's target; write to postgres or sqlite instead, or to MariaDB through a rest endpoint of an API in front of it"}
	}
	return nil
}

// settingsFrom reads settings that the registry validated, so every value has its type.
func settingsFrom(m map[string]any) Settings {
	var s Settings
	s.Driver, _ = m["driver"].(string)
	s.DSN, _ = m["dsn"].(string)
	s.Password, _ = m["password"].(string)
	s.Table, _ = m["table"].(string)
	s.KeyColumn, _ = m["key_column"].(string)
	s.CreateTable, _ = m["create_table"].(bool)
	return s
}

// validate checks s against spec and env's egress policy, and fills in defaults. ctx bounds
// the name lookups.
func (s *Settings) validate(ctx context.Context, env connector.Env) error {
	r := connector.NewRegistry()
	if err := Register(r); err != nil {
		return err
	}
	m := map[string]any{"driver": s.Driver, "dsn": s.DSN, "table": s.Table, "create_table": s.CreateTable}
	if s.Password != "" {
		m["password"] = s.Password
	}
	if s.KeyColumn != "" {
		m["key_column"] = s.KeyColumn
	}
	valid, err := r.ValidateSettings(Type, m)
	if err != nil {
		return err
	}
	checked := settingsFrom(valid)
	if err := checked.checkTarget(); err != nil {
		return err
	}
	if err := r.CheckEgress(ctx, Type, valid, env); err != nil {
		return err
	}
	*s = settingsFrom(valid)
	return nil
}
