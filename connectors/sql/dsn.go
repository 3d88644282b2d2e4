package sql

import (
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncline/syncline/pkg/connector"
)

// reaches lists where settings make the connector connect: every host of a postgres URL, or
// the server of a mariadb URL, with the database it opens, or the SQLite file. It is the
// spec's Reaches, checked by the egress policy when the endpoint is applied and when it is
// opened, as a target or as a source.
func reaches(settings map[string]any) ([]connector.Destination, error) {
	s := settingsFrom(settings)
	if s.Driver == DriverMariaDB {
		cfg, err := parseMariaDBDSN(s.DSN)
		if err != nil {
			return nil, err
		}
		return mariadbDestinations(cfg), nil
	}
	if s.Driver == DriverSQLite {
		path, _, err := parseSQLiteDSN(s.DSN)
		if err != nil {
			return nil, err
		}
		return []connector.Destination{{Setting: "settings.dsn", Path: path}}, nil
	}
	cfg, err := parsePostgresDSN(s.DSN)
	if err != nil {
		return nil, err
	}
	return postgresDestinations(cfg), nil
}

// postgresDestinations are the hosts pgx would connect to, each once.
func postgresDestinations(cfg *pgxpool.Config) []connector.Destination {
	c := cfg.ConnConfig
	db := database(cfg)
	dests := []connector.Destination{{Setting: "settings.dsn", Host: c.Host, Port: int(c.Port), Database: db}}
	for _, fb := range c.Fallbacks {
		d := connector.Destination{Setting: "settings.dsn", Host: fb.Host, Port: int(fb.Port), Database: db}
		if !slices.Contains(dests, d) {
			dests = append(dests, d)
		}
	}
	return dests
}

// database is the database a connection opens: the server takes the user's name when the
// URL names none.
func database(cfg *pgxpool.Config) string {
	if cfg.ConnConfig.Database != "" {
		return cfg.ConnConfig.Database
	}
	return cfg.ConnConfig.User
}

// fileParams are the postgres URL parameters that make the driver read a file of the
// connector's host (a password file, a service file, a client key): an endpoint has no
// business there. sslrootcert=system, the system's CAs, is the one value allowed.
var fileParams = []string{"passfile", "service", "servicefile", "sslcert", "sslkey", "sslpassword", "sslrootcert"}

// parsePostgresDSN parses a postgres URL as pgx does, after refusing what would read the
// connector's own files. Only the URL form is taken: its parameters are read the same way here
// and in pgx, so nothing hides from the check.
func parsePostgresDSN(dsn string) (*pgxpool.Config, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return nil, &connector.SettingsError{Path: "settings.dsn", Reason: "is not a postgres URL (the value is not shown); write it as postgres://user@host:5432/database and give the password as the credential password"}
	}
	if _, query, ok := strings.Cut(dsn, "?"); ok {
		q, err := url.ParseQuery(query)
		if err != nil {
			return nil, &connector.SettingsError{Path: "settings.dsn", Reason: "has a query string that is not valid (the value is not shown)"}
		}
		for _, p := range fileParams {
			if v, ok := q[p]; ok && !(p == "sslrootcert" && len(v) == 1 && v[0] == "system") {
				return nil, &connector.SettingsError{Path: "settings.dsn", Reason: "parameter " + p + " reads a file of the connector's host, which endpoints may not; leave it out (sslrootcert=system, the system's certificate authorities, is allowed)"}
			}
		}
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error quotes the URL, and with it any password, so it is not passed on.
		return nil, &connector.SettingsError{Path: "settings.dsn", Reason: "not a valid postgres URL (the value is not shown); write it as postgres://user@host:5432/database and give the password as the credential password"}
	}
	return cfg, nil
}

// sqlitePragmas are the pragmas a SQLite DSN may set: how the file is written, nothing that
// reaches another file or changes what SQLite may do.
var sqlitePragmas = []string{"busy_timeout", "cache_size", "foreign_keys", "journal_mode", "synchronous", "wal_autocheckpoint"}

var pragmaPattern = regexp.MustCompile(`^([a-z_]+)(\([A-Za-z0-9_-]+\)|=[A-Za-z0-9_-]+)?$`)

// parseSQLiteDSN splits a SQLite DSN into the file's path and its driver parameters. A file:
// prefix is taken off; a URI with an authority or percent escapes, or any parameter but the
// pragmas above and _time_format, is refused, so that the path checked is the file opened.
func parseSQLiteDSN(dsn string) (path, query string, err error) {
	path, query, _ = strings.Cut(dsn, "?")
	if rest, ok := strings.CutPrefix(path, "file:"); ok {
		if strings.HasPrefix(rest, "//") || strings.Contains(rest, "%") {
			return "", "", &connector.SettingsError{Path: "settings.dsn", Reason: "is a file: URI with a host or escapes; give the file's path (relative paths are in the tenant's folder)"}
		}
		path = rest
	}
	if path == "" {
		return "", "", &connector.SettingsError{Path: "settings.dsn", Reason: "names no file; give the file's path (relative paths are in the tenant's folder)"}
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", "", &connector.SettingsError{Path: "settings.dsn", Reason: "has parameters that are not valid after the ?; write them as ?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"}
	}
	allowed := "the sql target takes _pragma (" + strings.Join(sqlitePragmas, ", ") + ") and _time_format"
	for k, vs := range q {
		switch k {
		case "_time_format":
		case "_pragma":
			for _, v := range vs {
				m := pragmaPattern.FindStringSubmatch(strings.ToLower(v))
				if m == nil || !slices.Contains(sqlitePragmas, m[1]) {
					return "", "", &connector.SettingsError{Path: "settings.dsn", Reason: "pragma " + strings.SplitN(v, "(", 2)[0] + " is not allowed: " + allowed}
				}
			}
		default:
			return "", "", &connector.SettingsError{Path: "settings.dsn", Reason: "parameter " + k + " is not allowed: " + allowed}
		}
	}
	return path, query, nil
}
