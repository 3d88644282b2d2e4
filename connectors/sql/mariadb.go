package sql

import (
	"database/sql"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/syncline/syncline/pkg/connector"
)

// mariadbParams are the parameters a mariadb URL may carry: how the connection is secured
// and how long it may wait. Anything else (a file to load, a key registered by name, a
// server public key) is refused, so that the URL reaches nothing but its server.
var mariadbParams = []string{"tls", "timeout", "readTimeout", "writeTimeout"}

// mariadbTLS are the values tls takes: the driver's own, never a configuration registered
// under a name by the process.
var mariadbTLS = []string{"true", "false", "skip-verify", "preferred"}

const mariadbURLForm = "write it as mariadb://user@host:3306/database and give the password as the credential password"

// parseMariaDBDSN turns a mariadb:// (or mysql://) URL into the driver's configuration,
// without the password and without a dial function: the caller sets both. The value of the
// URL never appears in an error, since a user may have put a password in it by mistake.
func parseMariaDBDSN(dsn string) (*mysql.Config, error) {
	bad := func(reason string) error {
		return &connector.SettingsError{Path: "settings.dsn", Reason: reason}
	}
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "mariadb" && u.Scheme != "mysql") {
		return nil, bad("is not a mariadb URL (the value is not shown); " + mariadbURLForm)
	}
	if _, has := u.User.Password(); has {
		return nil, bad("holds a password (the value is not shown); take it out of the URL and give it as the credential password")
	}
	host, port := u.Hostname(), 3306
	if host == "" {
		return nil, bad("names no host (a unix socket is not reached); " + mariadbURLForm)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, bad("has a port that is not a number from 1 to 65535; " + mariadbURLForm)
		}
		port = n
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return nil, bad("names no database: a mariadb endpoint reads one database; " + mariadbURLForm)
	}
	if u.User.Username() == "" {
		return nil, bad("names no user; " + mariadbURLForm)
	}
	cfg := mysql.NewConfig()
	cfg.User = u.User.Username()
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort(host, strconv.Itoa(port))
	cfg.DBName = db
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.Timeout = 10 * time.Second
	// The driver's default logger writes to the process's log; every error it meets is
	// returned to the source as well.
	cfg.Logger = mysql.Logger(nopLogger{})
	// Every time the server gives and takes is UTC: TIMESTAMP columns are read in UTC, and a
	// DATETIME is taken to hold UTC, as it is compared with UTC_TIMESTAMP() for settle.
	cfg.Params = map[string]string{"time_zone": "'+00:00'"}
	allowed := "the sql connector takes " + strings.Join(mariadbParams, ", ") + " for mariadb"
	for k, vs := range u.Query() {
		if !slices.Contains(mariadbParams, k) {
			return nil, bad("parameter " + k + " is not allowed: " + allowed)
		}
		if len(vs) != 1 {
			return nil, bad("parameter " + k + " is given more than once")
		}
		v := vs[0]
		switch k {
		case "tls":
			if !slices.Contains(mariadbTLS, v) {
				return nil, bad("parameter tls is " + strconv.Quote(v) + ", not one of " + strings.Join(mariadbTLS, ", "))
			}
			cfg.TLSConfig = v
		default:
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, bad("parameter " + k + " must be a duration such as 30s")
			}
			switch k {
			case "timeout":
				cfg.Timeout = d
			case "readTimeout":
				cfg.ReadTimeout = d
			case "writeTimeout":
				cfg.WriteTimeout = d
			}
		}
	}
	return cfg, nil
}

// mariadbDestinations is the server a mariadb URL reaches, with its database.
func mariadbDestinations(cfg *mysql.Config) []connector.Destination {
	host, p, _ := net.SplitHostPort(cfg.Addr)
	port, _ := strconv.Atoi(p)
	return []connector.Destination{{Setting: "settings.dsn", Host: host, Port: port, Database: cfg.DBName}}
}

// openMariaDB opens a pool of connections to the server of dsn, every one of them dialled
// through env's egress policy, which checks the address it connects to when it connects.
// The password is the endpoint's own (or none). No connection is made yet.
func openMariaDB(dsn, password string, env connector.Env) (*sql.DB, error) {
	cfg, err := parseMariaDBDSN(dsn)
	if err != nil {
		return nil, err
	}
	cfg.Passwd = password
	cfg.DialFunc = env.Egress.Dialer(env.Tenant, cfg.DBName).DialContext
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		// Only the tls value can fail here, and it was checked; the message names no secret.
		return nil, &connector.SettingsError{Path: "settings.dsn", Reason: "cannot be used: " + err.Error()}
	}
	return sql.OpenDB(c), nil
}

type nopLogger struct{}

func (nopLogger) Print(...any) {}
