// Package integrator says what an integrator offers: its services, as the integration
// products it replaces name them (vouchers, payments, orders...), each made by the flows of
// some entities. `syncline get integrator NAME` and the web console's integrator page show
// them.
package integrator

import (
	"slices"
	"strings"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/recipe"
)

// Service is one service of an integrator and the flows that make it.
type Service struct {
	Name string
	// Entities are the entities whose flows make the service; the first is the one to
	// apply a flow of to set it up.
	Entities []string
	// Flows are the integrator's flows that make it, in the order they were given.
	Flows []Flow
}

// Flow is what a service shows of one of its flows.
type Flow struct {
	Name, Entity, Source, Target string
	// Duplicates is the flow's duplicate policy, or its entity's default when it names
	// none: skip for documents, update for the others.
	Duplicates string
	// Document: the entity is a document (order, invoice, payment...). DocumentState
	// is how far the target takes the flow's documents; empty: the target's default.
	Document      bool
	DocumentState string
}

// catalog lists the services in the order they are shown; the first two are always
// shown, set up or not, because every integrator is expected to offer them.
var catalog = []struct {
	name     string
	entities []string
	always   bool
}{
	{"vouchers", []string{"invoice"}, true},
	{"payments", []string{"payment", "customer-payment"}, true},
	{"orders", []string{"order"}, false},
	{"customers", []string{"customer"}, false},
	{"products", []string{"product", "category"}, false},
	{"stock", []string{"stock"}, false},
	// Every other document type (goods receipts, write-offs...).
	{"documents", slices.DeleteFunc(recipe.Documents(), func(e string) bool {
		return slices.Contains([]string{"order", "invoice", "payment", "customer-payment"}, e)
	}), false},
}

// Services returns the services of integrator made by flows (any tenant's flows may be
// given; those of other integrators are left out): vouchers and payments always, with no
// flows when not set up, and every other service that has a flow.
func Services(integrator string, flows []*controlplanev1.Resource) []Service {
	var out []Service
	for _, c := range catalog {
		svc := Service{Name: c.name, Entities: c.entities}
		for _, f := range flows {
			entity := field(f, "entity")
			if field(f, "integrator") != integrator || !slices.Contains(c.entities, entity) {
				continue
			}
			fl := Flow{Name: f.GetMetadata().GetName(), Entity: entity, Source: field(f, "source"), Target: field(f, "target"),
				Duplicates: field(f, "duplicates"), Document: recipe.IsDocument(entity)}
			if fl.Duplicates == "" {
				fl.Duplicates = "update"
				if fl.Document {
					fl.Duplicates = "skip"
				}
			}
			if d := f.GetSpec().GetFields()["document"].GetStructValue(); d != nil {
				fl.DocumentState = d.GetFields()["state"].GetStringValue()
			}
			svc.Flows = append(svc.Flows, fl)
		}
		if len(svc.Flows) > 0 || c.always {
			out = append(out, svc)
		}
	}
	return out
}

// field is a string field of a resource's spec, on one line.
func field(r *controlplanev1.Resource, name string) string {
	return strings.Join(strings.Fields(r.GetSpec().GetFields()[name].GetStringValue()), " ")
}
