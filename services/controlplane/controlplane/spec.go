package controlplane

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/mapping"
)

// APIVersion is the resource files' apiVersion.
const APIVersion = "syncline.dev/v1"

// Kinds, in the order Apply applies them: what a resource refers to is
// applied before it.
const (
	KindTenant     = "Tenant"
	KindIntegrator = "Integrator"
	KindEndpoint   = "Endpoint"
	KindFlow       = "Flow"
)

var kindOrder = map[string]int{KindTenant: 0, KindIntegrator: 1, KindEndpoint: 2, KindFlow: 3}

// TenantSpec is a tenant's spec.
type TenantSpec struct {
	DisplayName string `json:"displayName,omitempty"`
}

// IntegratorSpec is an integrator's spec.
type IntegratorSpec struct {
	// Stage is active (the default), inactive or deleted.
	Stage string `json:"stage,omitempty"`
}

// EndpointSpec is an endpoint's spec.
type EndpointSpec struct {
	Type        string         `json:"type"`
	Description string         `json:"description"`
	Settings    map[string]any `json:"settings,omitempty"`
}

// FlowSpec is a flow's spec.
type FlowSpec struct {
	Integrator string       `json:"integrator"`
	Source     string       `json:"source"`
	Target     string       `json:"target"`
	Entity     string       `json:"entity"`
	Mapping    mapping.Spec `json:"mapping"`
	// Duplicates is what happens when a record that already exists in the
	// target changes: update, skip or error. Orders and other documents
	// default to skip (a document in the target is not rewritten), other
	// entities to update.
	Duplicates string `json:"duplicates,omitempty"`
}

// documents are the entities whose duplicate policy defaults to skip.
var documents = map[string]bool{
	"order": true, "invoice": true, "payment": true, "return": true, "goods-receipt": true,
	"transfer": true, "purchase": true, "supplier-return": true, "inventory-count": true,
	"write-off": true, "customer-payment": true, "cash-document": true, "bank-document": true,
}

// decodeStrict decodes a spec, refusing fields the kind does not have: a
// misspelt field silently ignored is a flow that does something else.
func decodeStrict(spec []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	return nil
}

func (s *IntegratorSpec) check() error {
	switch s.Stage {
	case "":
		s.Stage = "active"
	case "active", "inactive", "deleted":
	default:
		return fmt.Errorf("spec.stage %q: use active, inactive or deleted", s.Stage)
	}
	return nil
}

func (s *EndpointSpec) check() error {
	if s.Type == "" {
		return fmt.Errorf("spec.type is required: the connector type, e.g. sql or nats")
	}
	if s.Description == "" {
		return fmt.Errorf("spec.description is required: say what system this endpoint is")
	}
	return nil
}

func (s *FlowSpec) check() error {
	for _, f := range []struct{ path, v string }{
		{"spec.integrator", s.Integrator}, {"spec.source", s.Source}, {"spec.target", s.Target}, {"spec.entity", s.Entity},
	} {
		if err := bus.ValidateToken(f.path, f.v); err != nil {
			return err
		}
	}
	if s.Source == s.Target {
		return fmt.Errorf("spec.source and spec.target are both %q: a flow moves records between two endpoints", s.Source)
	}
	switch s.Duplicates {
	case "":
		s.Duplicates = flowconfig.DuplicateUpdate
		if documents[s.Entity] {
			s.Duplicates = flowconfig.DuplicateSkip
		}
	case flowconfig.DuplicateUpdate, flowconfig.DuplicateSkip, flowconfig.DuplicateError:
	default:
		return fmt.Errorf("spec.duplicates %q: use update, skip or error", s.Duplicates)
	}
	if _, err := mapping.Compile(s.Mapping); err != nil {
		return fmt.Errorf("spec.mapping: %w", err)
	}
	return nil
}
