package integrator_test

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/integrator"
)

func flow(t *testing.T, name string, spec map[string]any) *controlplanev1.Resource {
	t.Helper()
	s, err := structpb.NewStruct(spec)
	if err != nil {
		t.Fatal(err)
	}
	return &controlplanev1.Resource{Kind: "Flow", Metadata: &controlplanev1.Metadata{Tenant: "acme", Name: name}, Spec: s}
}

// TestServices: an integrator's flows are grouped by the service their entity makes;
// vouchers and payments are always there, other services only with a flow; another
// integrator's flows are left out; a flow without a duplicate policy shows its entity's.
func TestServices(t *testing.T) {
	flows := []*controlplanev1.Resource{
		flow(t, "orders", map[string]any{"integrator": "sync", "source": "shop", "target": "erp", "entity": "order"}),
		flow(t, "invoices", map[string]any{"integrator": "sync", "source": "shop", "target": "books", "entity": "invoice",
			"duplicates": "error", "document": map[string]any{"state": "posted"}}),
		flow(t, "products", map[string]any{"integrator": "sync", "source": "pim", "target": "erp", "entity": "product"}),
		flow(t, "receipts", map[string]any{"integrator": "sync", "source": "wms", "target": "erp", "entity": "goods-receipt"}),
		flow(t, "theirs", map[string]any{"integrator": "other", "source": "shop", "target": "erp", "entity": "payment"}),
	}
	got := map[string][]integrator.Flow{}
	var names []string
	for _, s := range integrator.Services("sync", flows) {
		names = append(names, s.Name)
		got[s.Name] = s.Flows
	}
	if want := []string{"vouchers", "payments", "orders", "products", "documents"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	want := map[string][]integrator.Flow{
		"vouchers":  {{Name: "invoices", Entity: "invoice", Source: "shop", Target: "books", Duplicates: "error", Document: true, DocumentState: "posted"}},
		"payments":  nil,
		"orders":    {{Name: "orders", Entity: "order", Source: "shop", Target: "erp", Duplicates: "skip", Document: true}},
		"products":  {{Name: "products", Entity: "product", Source: "pim", Target: "erp", Duplicates: "update"}},
		"documents": {{Name: "receipts", Entity: "goods-receipt", Source: "wms", Target: "erp", Duplicates: "skip", Document: true}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("services\n%+v\nwant\n%+v", got, want)
	}
}
