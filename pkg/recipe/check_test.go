package recipe_test

import (
	"strings"
	"testing"

	"github.com/syncline/syncline/pkg/connector"
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
