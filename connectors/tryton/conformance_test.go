package tryton

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/syncline/syncline/connectors/tryton/trytontest"
	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/connector/connectortest"
)

// TestConformance runs the target suite against a real Tryton, for customers (name and
// phone) and for products (name and description), each subtest on a fresh database.
func TestConformance(t *testing.T) {
	caps, _ := entities(nil)
	capsOf := func(entity string) connector.Capabilities {
		for _, c := range caps {
			if c.Entity == entity {
				return c
			}
		}
		t.Fatalf("no capabilities for %s", entity)
		return connector.Capabilities{}
	}
	t.Run(EntityCustomer, func(t *testing.T) {
		connectortest.RunTarget(t, func(t *testing.T) connectortest.Fixture {
			db := srv.NewDatabase(t)
			return connectortest.Fixture{
				Target: openOn(t, db, nil), Reader: reader{db: db}, Entity: EntityCustomer, Caps: capsOf(EntityCustomer),
				Fields: [2]string{"name", "phone"},
				Payload: func(key, a, b string) json.RawMessage {
					return mustJSON(map[string]string{"email": key + "@example.com", "name": a, "phone": b})
				},
				// Tryton checks an EU VAT number's check digits.
				Refused: json.RawMessage(`{"email":"refused@example.com","name":"Refused","tax_id":"DE000000"}`),
			}
		})
	})
	t.Run(EntityProduct, func(t *testing.T) {
		connectortest.RunTarget(t, func(t *testing.T) connectortest.Fixture {
			db := srv.NewDatabase(t)
			return connectortest.Fixture{
				Target: openOn(t, db, nil), Reader: reader{db: db}, Entity: EntityProduct, Caps: capsOf(EntityProduct),
				Fields: [2]string{"name", "description"},
				Payload: func(key, a, b string) json.RawMessage {
					return mustJSON(map[string]any{"sku": "SKU-" + key, "name": a, "description": b, "price": 9.9})
				},
				// Tryton checks an EAN's check digit.
				Refused: json.RawMessage(`{"sku":"REFUSED","name":"Refused","price":1,"ean":"4006381333932"}`),
			}
		})
	})
}

// reader reads customers and products back over Tryton's API as the admin, independently of
// the target's client.
type reader struct {
	db *trytontest.Database
}

func (r reader) model(entity string) string {
	if entity == EntityCustomer {
		return "party.identifier"
	}
	return "product.identifier"
}

func (r reader) Keys(_ context.Context, entity string) ([]string, error) {
	active := "party.active"
	if entity == EntityProduct {
		active = "product.template.active"
	}
	var rows []struct {
		Code string `json:"code"`
	}
	if err := r.db.CallErr(&rows, "model."+r.model(entity)+".search_read", []any{[]any{"code", "like", refPrefix + "%"}, []any{active, "=", true}},
		0, nil, nil, []string{"code"}, map[string]any{}); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var keys []string
	for _, row := range rows {
		k := strings.TrimPrefix(row.Code, refPrefix)
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys, nil
}

func (r reader) Fields(_ context.Context, entity, key string) (map[string]string, bool, error) {
	if entity == EntityCustomer {
		var rows []struct {
			Party *struct {
				Name  string  `json:"name"`
				Phone *string `json:"phone"`
			} `json:"party."`
		}
		if err := r.db.CallErr(&rows, "model.party.identifier.search_read", []any{[]any{"code", "=", refPrefix + key}, []any{"party.active", "=", true}},
			0, nil, nil, []string{"party.name", "party.phone"}, map[string]any{}); err != nil {
			return nil, false, err
		}
		if len(rows) != 1 || rows[0].Party == nil {
			return nil, false, nil
		}
		out := map[string]string{"name": rows[0].Party.Name, "phone": ""}
		if rows[0].Party.Phone != nil {
			out["phone"] = *rows[0].Party.Phone
		}
		return out, true, nil
	}
	var rows []struct {
		Product *struct {
			Name        string  `json:"name"`
			Description *string `json:"description"`
		} `json:"product."`
	}
	if err := r.db.CallErr(&rows, "model.product.identifier.search_read", []any{[]any{"code", "=", refPrefix + key}, []any{"product.template.active", "=", true}},
		0, nil, nil, []string{"product.name", "product.description"}, map[string]any{}); err != nil {
		return nil, false, err
	}
	if len(rows) == 0 || rows[0].Product == nil {
		return nil, false, nil
	}
	if len(rows) > 1 {
		return nil, false, fmt.Errorf("%d variants hold the external reference %s", len(rows), key)
	}
	out := map[string]string{"name": rows[0].Product.Name, "description": ""}
	if rows[0].Product.Description != nil {
		out["description"] = *rows[0].Product.Description
	}
	return out, true, nil
}
