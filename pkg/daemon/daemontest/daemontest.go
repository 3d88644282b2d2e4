// Package daemontest checks a service's main as an operator first meets it:
// --help lists what the service reads, and the whole configuration is
// checked, every bad variable named, before anything is connected.
package daemontest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/syncline/syncline/pkg/daemon"
	"github.com/syncline/syncline/pkg/natstest"
)

// Run is a service's main without the process: it runs the service with
// the command-line arguments args, writing --help to stdout.
type Run func(ctx context.Context, args []string, stdout io.Writer) error

// bad is a value of each variable that its check refuses.
var bad = map[string]string{
	"SYNCLINE_DATABASE_URL":              "mysql://syncline@db/syncline",
	"SYNCLINE_HTTP_ADDR":                 "8080",
	"SYNCLINE_ADMIN_TOKEN":               "too-short",
	"SYNCLINE_MASTER_KEY":                "not base64!",
	"SYNCLINE_PARTITIONS":                "0",
	"SYNCLINE_REPLICAS":                  "three",
	"SYNCLINE_LOG_LEVEL":                 "loud",
	"OTEL_EXPORTER_OTLP_ENDPOINT":        "collector:4318",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4318/v1/traces",
	// A user without its password, a password without its user, files
	// that are not there, a certificate without its key, not a seed.
	"SYNCLINE_NATS_USER":         "syncline",
	"SYNCLINE_NATS_PASSWORD":     "a-password-without-its-user",
	"SYNCLINE_NATS_CREDS":        "/nonexistent/syncline.creds",
	"SYNCLINE_NATS_TLS_CA":       "/nonexistent/ca.pem",
	"SYNCLINE_NATS_TLS_CERT":     "/nonexistent/cert.pem",
	"SYNCLINE_NATS_TLS_KEY":      "/nonexistent/key.pem",
	"SYNCLINE_NATS_CALLOUT_SEED": "not-a-seed",
	// A rule that is no rule, a file where a folder goes, a server without
	// its port.
	"SYNCLINE_EGRESS_ALLOW":   "10.0.0.0/33",
	"SYNCLINE_EGRESS_FILES":   "/dev/null",
	"SYNCLINE_EGRESS_PROTECT": "db.internal",
	// An address without its scheme; a trace link without the place of its id.
	"SYNCLINE_EVENTLOG_URL": "eventlog:7400",
	"SYNCLINE_TRACE_URL":    "http://jaeger:16686/trace/",
}

// CheckMain runs the service's main (run) as spec describes it: --help
// lists exactly the variables the service reads; a bad value in every one
// of them fails with an error naming each; a required variable left out
// is named; a store that cannot be opened stops it; and in none of these
// cases has the service created anything on the NATS server
// SYNCLINE_NATS_URL points at.
func CheckMain(t *testing.T, spec daemon.Spec, run Run) {
	t.Helper()
	all := daemon.Spec{Store: true, API: true, MasterKey: true, Callout: true, Egress: true}.Variables()
	for _, name := range all {
		t.Setenv(name, "")
	}
	reads := spec.Variables()

	t.Run("help", func(t *testing.T) {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"--help"}, &out); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s --help = %v, want the usage", spec.Name, err)
		}
		for _, name := range all {
			listed := strings.Contains(out.String(), name)
			if want := slices.Contains(reads, name); listed != want {
				t.Errorf("%s --help lists %s: %t, want %t\n%s", spec.Name, name, listed, want, out.String())
			}
		}
	})

	t.Run("arguments are refused", func(t *testing.T) {
		err := run(context.Background(), []string{"serve"}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--help") {
			t.Errorf("%s serve = %v, want an error pointing at --help", spec.Name, err)
		}
	})

	t.Run("every bad variable is named", func(t *testing.T) {
		untouched(t, func() {
			for _, name := range reads {
				if name != "SYNCLINE_NATS_URL" {
					t.Setenv(name, bad[name])
				}
			}
			err := run(context.Background(), nil, io.Discard)
			for _, name := range reads {
				if name != "SYNCLINE_NATS_URL" && (err == nil || !strings.Contains(err.Error(), name)) {
					t.Errorf("%s with %s=%q = %v, want an error naming %s", spec.Name, name, bad[name], err, name)
				}
			}
		})
	})

	if spec.Store || spec.API {
		t.Run("a missing required variable is named", func(t *testing.T) {
			untouched(t, func() {
				err := run(context.Background(), nil, io.Discard)
				for _, name := range []string{"SYNCLINE_DATABASE_URL", "SYNCLINE_ADMIN_TOKEN"} {
					named := err != nil && strings.Contains(err.Error(), name+" is not set")
					if want := slices.Contains(reads, name); named != want {
						t.Errorf("%s without %s = %v; want it named: %t", spec.Name, name, err, want)
					}
				}
			})
		})
	}

	if spec.Store {
		t.Run("a store that cannot be opened", func(t *testing.T) {
			untouched(t, func() {
				t.Setenv("SYNCLINE_DATABASE_URL", "postgres://syncline@127.0.0.1:1/syncline?connect_timeout=5")
				t.Setenv("SYNCLINE_ADMIN_TOKEN", "an-admin-token-of-some-length")
				err := run(context.Background(), nil, io.Discard)
				if err == nil || !strings.Contains(err.Error(), "SYNCLINE_DATABASE_URL") {
					t.Errorf("%s with no database at its URL = %v, want an error naming SYNCLINE_DATABASE_URL", spec.Name, err)
				}
			})
		})
	}
}

// untouched runs f with SYNCLINE_NATS_URL pointing at a new NATS server,
// for f's service to fail on, and then checks that the server holds no
// stream and no bucket: the service stopped before it created anything.
func untouched(t *testing.T, f func()) {
	t.Helper()
	s := natstest.Run(t)
	t.Setenv("SYNCLINE_NATS_URL", s.ClientURL())
	f()
	_, js := natstest.Connect(t, s)
	names := js.StreamNames(context.Background())
	for name := range names.Name() {
		t.Errorf("the service created %s on NATS before it failed", name)
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
}
