package recipe_test

import (
	"strings"
	"testing"

	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/connector/connectortest"
	"github.com/syncline/syncline/pkg/recipe"
)

func TestCheckNamesWhatTheTargetLacks(t *testing.T) {
	all := connector.Capabilities{Entity: "product", FindBy: []string{connector.FieldExternalRef}, Read: true, Create: true, Update: true, Delete: true}
	tests := []struct {
		name string
		flow func(f *recipe.Flow)
		want []string // "" for no error
	}{
		{"a target that can do everything", func(*recipe.Flow) {}, nil},
		{"no lookup by external reference", func(f *recipe.Flow) { f.Caps.FindBy = []string{"sku"} }, []string{"finding records by their external reference"}},
		{"no create", func(f *recipe.Flow) { f.Caps.Create = false }, []string{"creating records"}},
		{"no update under the update policy", func(f *recipe.Flow) { f.Caps.Update = false }, []string{"updating records", "skip or error need no updates"}},
		{"no update under the skip policy", func(f *recipe.Flow) { f.Caps.Update, f.Duplicates = false, recipe.DuplicateSkip }, nil},
		{"if_empty without reading", func(f *recipe.Flow) {
			f.Caps.Read = false
			f.WriteModes = map[string]connector.WriteMode{"description": connector.WriteIfEmpty}
		}, []string{"reading records", "if_empty"}},
		{"several at once", func(f *recipe.Flow) { f.Caps.Create, f.Caps.Update = false, false }, []string{"creating records", "; and updating records"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := recipe.Flow{Target: "erp", Entity: "product", Caps: all}
			f.Caps.FindBy = append([]string(nil), all.FindBy...)
			tt.flow(&f)
			err := recipe.Check(f)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check = nil, want an error naming %q", tt.want)
			}
			for _, w := range append(tt.want, "target erp", "product") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Check = %q, want it to name %q", err, w)
				}
			}
		})
	}
}

// TestTargetSkip: a record the target leaves out on purpose is skipped with its reason,
// writes nothing, and the next record of its key is looked up again.
func TestTargetSkip(t *testing.T) {
	m := connectortest.NewMemory()
	f := recipe.Flow{Target: "memory", Entity: "stock", Duplicates: recipe.DuplicateUpdate,
		Caps: connector.Capabilities{Entity: "stock", FindBy: []string{connector.FieldExternalRef}, Read: true, Create: true, Update: true}}
	out, err := recipe.Run(t.Context(), m, f, []connector.Record{
		{Key: "s1", Op: connector.OpUpsert, Create: true, Payload: []byte(`{"on_hand":3,"skip":"this shop does not manage stock"}`)},
		{Key: "s1", Op: connector.OpUpsert, Payload: []byte(`{"on_hand":4}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Action != recipe.Skipped || out[0].Code != recipe.CodeSkippedByTarget || out[0].Reason != "this shop does not manage stock" {
		t.Errorf("the skipped record: %+v", out[0])
	}
	if out[1].Action != recipe.Created {
		t.Errorf("the next record of the key: %+v, want it created (nothing was there)", out[1])
	}
	if recs := m.Records("s1"); len(recs) != 1 || recs[0]["on_hand"] != 4.0 {
		t.Errorf("the target holds %v, want the second record only", recs)
	}
}
