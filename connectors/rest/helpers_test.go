package rest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/syncline/syncline/connectors/rest"
	"github.com/syncline/syncline/connectors/rest/jsonservertest"
	"github.com/syncline/syncline/pkg/connector"
)

// peer is the package's one json-server, which each test resets to what it needs.
var peer *jsonservertest.Server

func TestMain(m *testing.M) {
	var err error
	peer, err = jsonservertest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	peer.Stop()
	os.Exit(code)
}

// localEnv is tenant acme's environment with an egress policy that allows this machine, where
// the test servers run, and budget (none: the target makes one from its settings).
func localEnv(t *testing.T, budget *connector.Budget) connector.Env {
	t.Helper()
	e, err := connector.NewEgress(connector.EgressConfig{Allow: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	return connector.Env{Tenant: "acme", Egress: e, Budget: budget}
}

// registry holds the rest target only.
func registry(t *testing.T) *connector.Registry {
	t.Helper()
	r := connector.NewRegistry()
	if err := rest.Register(r); err != nil {
		t.Fatal(err)
	}
	return r
}

// open opens a rest target through the registry, as the connector service does.
func open(t *testing.T, settings map[string]any, env connector.Env) connector.Target {
	t.Helper()
	target, err := registry(t).OpenTarget(context.Background(), rest.Type, settings, env)
	if err != nil {
		t.Fatalf("opening the rest target: %v", err)
	}
	t.Cleanup(func() { target.Close() })
	return target
}

// shopSettings are the settings of a shop whose customers and products json-server serves.
func shopSettings(baseURL string) map[string]any {
	return map[string]any{
		"base_url": baseURL,
		"timeout":  "10s",
		"entities": map[string]any{
			"customer": map[string]any{
				"path":      "/customers",
				"ref_field": "externalRef",
				"lookup":    map[string]any{"external_ref": "externalRef", "email": "email"},
				"delete":    true,
			},
			"product": map[string]any{
				"path":          "/products",
				"item_path":     "/products/{id}",
				"ref_field":     "externalRef",
				"update_method": "PUT",
				"lookup":        map[string]any{"sku": "sku"},
			},
		},
	}
}

func object(t *testing.T, fields map[string]any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeOne writes one record and fails the test on an error of the whole call.
func writeOne(t *testing.T, target connector.Target, entity string, w connector.Write) connector.Result {
	t.Helper()
	results, err := target.Write(context.Background(), entity, []connector.Write{w})
	if err != nil {
		t.Fatalf("Write %s %s %q: %v", entity, w.Op, w.Key, err)
	}
	if len(results) != 1 {
		t.Fatalf("Write returned %d results for 1 write", len(results))
	}
	return results[0]
}
