// Package connectors lists the connector types this build ships. The control
// plane validates endpoints against it; the connector service opens targets
// from it.
package connectors

import (
	"fmt"

	"github.com/syncline/syncline/connectors/rest"
	sqltarget "github.com/syncline/syncline/connectors/sql"
	"github.com/syncline/syncline/connectors/tryton"
	"github.com/syncline/syncline/connectors/webhook"
	sdk "github.com/syncline/syncline/pkg/connector"
)

// Builtin returns a registry with every shipped connector type.
func Builtin() (*sdk.Registry, error) {
	r := sdk.NewRegistry()
	if err := sqltarget.Register(r); err != nil {
		return nil, fmt.Errorf("registering sql target: %w", err)
	}
	if err := rest.Register(r); err != nil {
		return nil, fmt.Errorf("registering rest target: %w", err)
	}
	if err := tryton.Register(r); err != nil {
		return nil, fmt.Errorf("registering tryton target: %w", err)
	}
	// Sources that publish change events straight to the ingest stream, with
	// pkg/ingest or any NATS client: nothing to run on this side.
	if err := r.RegisterSource(sdk.Spec{
		Type:    "nats",
		Kind:    sdk.KindSource,
		Summary: "A system or service that publishes change events to ingest.<tenant>.<endpoint>.<entity> itself.",
	}); err != nil {
		return nil, fmt.Errorf("registering nats source: %w", err)
	}
	if err := webhook.Register(r); err != nil {
		return nil, fmt.Errorf("registering webhook source: %w", err)
	}
	return r, nil
}
