package connectortest_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/connector/connectortest"
)

func TestRunTargetPassesOnAConformingTarget(t *testing.T) {
	connectortest.RunTarget(t, func(t *testing.T) connectortest.Fixture {
		m := connectortest.NewMemory()
		return connectortest.Fixture{
			Target: m, Reader: m, Entity: "customer",
			Caps:   connector.Capabilities{Entity: "customer", FindBy: []string{connector.FieldExternalRef}, Read: true, Create: true, Update: true, Delete: true},
			Fields: [2]string{"name", "city"},
			Payload: func(_, a, b string) json.RawMessage {
				return json.RawMessage(fmt.Sprintf(`{"name":%q,"city":%q}`, a, b))
			},
			Refused: json.RawMessage(`{"refuse": true}`),
		}
	})
}
