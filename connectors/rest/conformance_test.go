package rest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"

	"github.com/syncline/syncline/connectors/rest/jsonservertest"
	"github.com/syncline/syncline/pkg/connector/connectortest"
)

// TestConformance runs the target suite against json-server, once updating with PATCH and
// once with PUT, reading every effect back over json-server's own API.
func TestConformance(t *testing.T) {
	for _, method := range []string{"PATCH", "PUT"} {
		t.Run(method, func(t *testing.T) {
			connectortest.RunTarget(t, func(t *testing.T) connectortest.Fixture {
				peer.Reset(t, jsonservertest.State{
					DB: map[string][]map[string]any{"customers": nil},
					// The shop refuses a customer whose e-mail address is not one.
					Rules: map[string]map[string]jsonservertest.Rule{"customers": {"email": {Pattern: "@", Message: "email must be an e-mail address"}}},
				})
				settings := map[string]any{
					"base_url": peer.URL,
					"entities": map[string]any{"customer": map[string]any{
						"path": "/customers", "ref_field": "externalRef", "update_method": method, "delete": true,
					}},
				}
				r := registry(t)
				valid, err := r.ValidateSettings("rest", settings)
				if err != nil {
					t.Fatal(err)
				}
				spec, _ := r.Spec("rest")
				caps, err := spec.Entities(valid)
				if err != nil {
					t.Fatal(err)
				}
				return connectortest.Fixture{
					Target: open(t, settings, localEnv(t, nil)),
					Reader: peerReader{},
					Entity: "customer",
					Caps:   caps[0],
					Fields: [2]string{"name", "city"},
					Payload: func(_, a, b string) json.RawMessage {
						p, _ := json.Marshal(map[string]string{"name": a, "city": b}) // strings always encode
						return p
					},
					Refused: json.RawMessage(`{"name": "x", "email": "not-an-address"}`),
				}
			})
		})
	}
}

// peerReader reads customers back from json-server.
type peerReader struct{}

func (peerReader) Keys(ctx context.Context, entity string) ([]string, error) {
	items, err := peer.List(ctx, jsonservertest.Auth{}, entity+"s", nil)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, c := range items {
		if ref, ok := c["externalRef"].(string); ok {
			keys = append(keys, ref)
		}
	}
	return keys, nil
}

func (peerReader) Fields(ctx context.Context, entity, key string) (map[string]string, bool, error) {
	items, err := peer.List(ctx, jsonservertest.Auth{}, entity+"s", url.Values{"externalRef": {key}})
	if err != nil {
		return nil, false, err
	}
	// json-server ignores a filter no record has a field for, so check the answer.
	for _, c := range items {
		if c["externalRef"] != key {
			continue
		}
		fields := map[string]string{}
		for k, v := range c {
			fields[k] = fmt.Sprint(v)
		}
		return fields, true, nil
	}
	return nil, false, nil
}
