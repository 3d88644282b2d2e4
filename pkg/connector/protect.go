package connector

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Protect reads one of Syncline's own servers or stores, given as the URL Syncline uses to
// reach it: a postgres URL (every host of it, and its database), sqlite:PATH (the file), one or
// more NATS URLs (comma-separated, as NATS takes them), or host:port.
func Protect(u string) ([]Protected, error) {
	switch {
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		cfg, err := pgconn.ParseConfig(u)
		if err != nil {
			return nil, errors.New("a postgres URL is not valid (not shown: it may hold a password)")
		}
		db := cfg.Database
		if db == "" {
			db = cfg.User
		}
		out := []Protected{{What: "Syncline's own database", Host: cfg.Host, Port: int(cfg.Port), Database: db}}
		for _, fb := range cfg.Fallbacks {
			// sslmode=prefer makes a fallback of the same host without TLS.
			if p := (Protected{What: "Syncline's own database", Host: fb.Host, Port: int(fb.Port), Database: db}); !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
		return unixless(out), nil
	case strings.HasPrefix(u, "sqlite:"):
		path, _, _ := strings.Cut(strings.TrimPrefix(u, "sqlite:"), "?")
		// The store's file and SQLite's own files next to it.
		return []Protected{
			{What: "Syncline's own store", Path: path},
			{What: "Syncline's own store", Path: path + "-wal"},
			{What: "Syncline's own store", Path: path + "-shm"},
			{What: "Syncline's own store", Path: path + "-journal"},
		}, nil
	case strings.Contains(u, "://"):
		var out []Protected
		for s := range strings.SplitSeq(u, ",") {
			nu, err := url.Parse(strings.TrimSpace(s))
			if err != nil || nu.Hostname() == "" {
				return nil, fmt.Errorf("%q is not a URL with a host", s)
			}
			port := 4222
			if p := nu.Port(); p != "" {
				if port, err = strconv.Atoi(p); err != nil {
					return nil, fmt.Errorf("%q has a port that is not a number", s)
				}
			}
			out = append(out, Protected{What: "Syncline's own NATS server", Host: nu.Hostname(), Port: port})
		}
		return out, nil
	}
	host, p, err := net.SplitHostPort(u)
	if err != nil {
		return nil, fmt.Errorf("%q: give a postgres://, nats:// or sqlite: URL, or host:port", u)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return nil, fmt.Errorf("%q has a port that is not a number", u)
	}
	return []Protected{{What: "Syncline's own server", Host: host, Port: port}}, nil
}

// unixless drops unix sockets: endpoints never reach one.
func unixless(ps []Protected) []Protected {
	out := ps[:0]
	for _, p := range ps {
		if !strings.HasPrefix(p.Host, "/") {
			out = append(out, p)
		}
	}
	return out
}
