package resourcefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
)

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const examplePath = "../../examples/orders.yaml"

func TestLoadExample(t *testing.T) {
	rs, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.Kind+" "+r.Metadata.Tenant+"/"+r.Metadata.Name)
	}
	want := "Tenant /acme, Integrator acme/shop-to-erp, Endpoint acme/shop, Endpoint acme/erp, Flow acme/orders"
	if strings.Join(got, ", ") != want {
		t.Fatalf("loaded %s, want %s", strings.Join(got, ", "), want)
	}
	flow := rs[4].Spec.AsMap()
	if flow["duplicates"] != "skip" || rs[4].ApiVersion != "syncline.dev/v1" {
		t.Errorf("flow = %s %v", rs[4].ApiVersion, flow)
	}
	settings := rs[3].Spec.AsMap()["settings"].(map[string]any)
	if settings["create_table"] != true || settings["driver"] != "sqlite" {
		t.Errorf("erp settings = %v", settings)
	}
}

func TestLoadFolderInNameOrder(t *testing.T) {
	dir := t.TempDir()
	tenant := func(name string) string {
		return "apiVersion: syncline.dev/v1\nkind: Tenant\nmetadata:\n  name: " + name + "\n"
	}
	writeFile(t, dir, "b.yaml", tenant("second")+"---\n"+tenant("third"))
	writeFile(t, dir, "a.yml", tenant("first"))
	writeFile(t, dir, "c.txt", "not: [yaml")
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "sub.yaml"), "d.yaml", tenant("nested"))

	rs, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rs {
		names = append(names, r.Metadata.Name)
	}
	if got := strings.Join(names, " "); got != "first second third" {
		t.Errorf("loaded %q, want the .yaml/.yml files of the folder in name order: first second third", got)
	}
}

func TestLoadSeveralPaths(t *testing.T) {
	dir := t.TempDir()
	extra := writeFile(t, dir, "extra.yaml", "apiVersion: syncline.dev/v1\nkind: Tenant\nmetadata:\n  name: zeta\n")
	rs, err := Load(extra, examplePath)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 6 || rs[0].Metadata.Name != "zeta" || rs[1].Metadata.Name != "acme" {
		t.Errorf("loaded %d resources starting with %v, want zeta then the example's five", len(rs), rs[0].Metadata)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("Load = %v, want a not-exist error naming the file", err)
	}
}

// flow is a valid Flow document; tests break one part of it.
const flow = `apiVersion: syncline.dev/v1
kind: Flow
metadata:
  tenant: acme
  name: orders
spec:
  integrator: shop-to-erp
  source: shop
  target: erp
  entity: order
  duplicates: skip
  mapping:
    fields:
      total: double(source.total)
`

func TestLoadProblems(t *testing.T) {
	tests := []struct {
		name, yaml string
		// want is the error line after "<file>, ".
		want string
	}{
		{"unknown field", strings.Replace(flow, "  duplicates: skip\n", "  duplicate: skip\n", 1),
			`document 1 (Flow orders): spec.duplicate: unknown field; use document, duplicates, entity, integrator, keyField, keyless, mapping, schedule, source, target, writeModes`},
		{"unknown field in the mapping", strings.Replace(flow, "    fields:\n", "    field:\n", 1),
			`document 1 (Flow orders): spec.mapping.field: unknown field; use defaults, exclude, fields, filter, validations, valueMaps`},
		{"unknown top-level field", "state: {}\n" + flow,
			`document 1 (Flow orders): state: unknown field; use apiVersion, kind, metadata, spec, status`},
		{"wrong enum", strings.Replace(flow, "duplicates: skip", "duplicates: skp", 1),
			`document 1 (Flow orders): spec.duplicates: value must be one of "update", "skip", "error"`},
		{"wrong stage", "apiVersion: syncline.dev/v1\nkind: Integrator\nmetadata: {tenant: acme, name: i}\nspec:\n  stage: paused\n",
			`document 1 (Integrator i): spec.stage: value must be one of "active", "inactive", "deleted"`},
		{"missing required field", strings.Replace(flow, "  target: erp\n", "", 1),
			`document 1 (Flow orders): spec.target: required field is missing`},
		{"missing endpoint description", "apiVersion: syncline.dev/v1\nkind: Endpoint\nmetadata: {tenant: acme, name: erp}\nspec:\n  type: sql\n",
			`document 1 (Endpoint erp): spec.description: required field is missing`},
		{"missing spec", "apiVersion: syncline.dev/v1\nkind: Endpoint\nmetadata: {tenant: acme, name: erp}\n",
			`document 1 (Endpoint erp): spec: required field is missing`},
		{"missing name", "apiVersion: syncline.dev/v1\nkind: Tenant\nmetadata: {}\n",
			`document 1 (Tenant): metadata.name: required field is missing`},
		{"bad name pattern", strings.Replace(flow, "name: orders", "name: Orders_2", 1),
			`document 1 (Flow Orders_2): metadata.name: "Orders_2" does not fit: a subject-safe name: lower-case letters, digits and '-', starting with a letter, at most 63 characters`},
		{"name too long", strings.Replace(flow, "name: orders", "name: o"+strings.Repeat("x", 63), 1),
			`document 1 (Flow o` + strings.Repeat("x", 63) + `): metadata.name: "o` + strings.Repeat("x", 63) + `" does not fit`},
		{"bad reference name", strings.Replace(flow, "source: shop", "source: 1shop", 1),
			`document 1 (Flow orders): spec.source: "1shop" does not fit`},
		{"wrong type", strings.Replace(flow, "total: double(source.total)", "total: 12", 1),
			`document 1 (Flow orders): spec.mapping.fields.total: must be string, not number`},
		{"wrong type of credentials", "apiVersion: syncline.dev/v1\nkind: Endpoint\nmetadata: {tenant: acme, name: erp}\nspec:\n  type: rest\n  description: ERP\n  credentials:\n    token: [a, b]\n",
			`document 1 (Endpoint erp): spec.credentials.token: must be string, not array`},
		{"missing tenant on an Integrator", "apiVersion: syncline.dev/v1\nkind: Integrator\nmetadata:\n  name: shop-to-erp\n",
			`document 1 (Integrator shop-to-erp): metadata.tenant: required field is missing`},
		{"a tenant on a Tenant", "apiVersion: syncline.dev/v1\nkind: Tenant\nmetadata: {name: acme, tenant: other}\n",
			`document 1 (Tenant acme): metadata.tenant: a Tenant has no tenant; leave it out`},
		{"bad apiVersion", strings.Replace(flow, "syncline.dev/v1", "syncline.dev/v2", 1),
			`document 1 (Flow orders): apiVersion: value must be "syncline.dev/v1"`},
		{"missing apiVersion", strings.Replace(flow, "apiVersion: syncline.dev/v1\n", "", 1),
			`document 1 (Flow orders): apiVersion: required field is missing`},
		{"bad kind", strings.Replace(flow, "kind: Flow", "kind: Pipeline", 1),
			`document 1 (Pipeline orders): kind: value must be one of "Tenant", "Integrator", "Endpoint", "Flow"`},
		{"interval without every", flow + "  schedule:\n    mode: interval\n",
			`document 1 (Flow orders): spec.schedule.every: required field is missing`},
		{"bad interval", flow + "  schedule:\n    mode: interval\n    every: 5 minutes\n",
			`document 1 (Flow orders): spec.schedule.every: "5 minutes" does not fit: the polling interval of mode interval, a Go duration such as 5m or 1h30m`},
		{"validation rule in a list", flow + "    validations:\n      - field: total\n        check: value > 0\n      - field: sku\n",
			`document 1 (Flow orders): spec.mapping.validations[1].check: required field is missing`},
		{"a key that is not an identifier", "apiVersion: syncline.dev/v1\nkind: Tenant\nmetadata: {name: acme}\nspec:\n  display name: ACME\n",
			`document 1 (Tenant acme): spec["display name"]: unknown field; use alerts, displayName`},
		{"alerts to an ftp webhook", "apiVersion: syncline.dev/v1\nkind: Tenant\nmetadata: {name: acme}\nspec:\n  alerts:\n    webhook: ftp://hooks.example.com/x\n",
			`document 1 (Tenant acme): spec.alerts.webhook: "ftp://hooks.example.com/x" does not fit: the http or https URL that receives the alerts`},
		{"alerts without a webhook", "apiVersion: syncline.dev/v1\nkind: Tenant\nmetadata: {name: acme}\nspec:\n  alerts:\n    minInterval: 1 minute\n",
			`document 1 (Tenant acme): spec.alerts.webhook: required field is missing`},
		{"not a mapping", "apiVersion: syncline.dev/v1\n---\n- just\n- a list\n",
			`document 2: must be object, not array`},
		{"a list of resources, one of them wrong", "- apiVersion: syncline.dev/v1\n  kind: Tenant\n  metadata: {name: acme}\n- just a string\n",
			`document 2: must be object, not string`},
		{"a second document", "apiVersion: syncline.dev/v1\nkind: Tenant\nmetadata: {name: acme}\n---\n" + strings.Replace(flow, "entity: order", "entity: Order", 1),
			`document 2 (Flow orders): spec.entity: "Order" does not fit`},
		{"duplicate key", strings.Replace(flow, "  source: shop\n", "  source: shop\n  source: webshop\n", 1),
			`document 1 (Flow orders): spec.source: line 9: key "source" is already defined on line 8`},
		{"too large a number", flow + "    defaults:\n      id: 9007199254740993\n",
			`document 1 (Flow orders): spec.mapping.defaults.id: line 16: 9007199254740993 is too large to keep exactly (at most ±2^53); quote it to keep it as a string`},
		{"not a JSON number", flow + "    defaults:\n      ratio: .inf\n",
			`document 1 (Flow orders): spec.mapping.defaults.ratio: line 16: .inf is not a JSON number`},
		{"a custom tag", flow + "    defaults:\n      ref: !secret db\n",
			`document 1 (Flow orders): spec.mapping.defaults.ref: line 16: tag !secret is not supported`},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, strings.ReplaceAll(tt.name, " ", "-")+".yaml", tt.yaml)
			rs, err := Load(path)
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("Load = %d resources, %v; want an *Error", len(rs), err)
			}
			if rs != nil {
				t.Errorf("Load returned %d resources along with the error", len(rs))
			}
			if !strings.Contains(err.Error(), path+", "+tt.want) {
				t.Errorf("Load error:\n%s\nwant a line containing:\n%s, %s", err, path, tt.want)
			}
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	doc := strings.NewReplacer(
		"duplicates: skip", "duplicates: sometimes",
		"  target: erp\n", "",
		"name: orders", "name: Orders",
		"    fields:\n", "    fieldz:\n",
	).Replace(flow)
	second := "apiVersion: syncline.dev/v1\nkind: Integrator\nmetadata: {name: shop-to-erp}\n"
	path := writeFile(t, t.TempDir(), "flows.yaml", doc+"---\n"+second)
	_, err := Load(path)
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("Load = %v, want an *Error", err)
	}
	want := []string{
		path + `, document 1 (Flow Orders): metadata.name: "Orders" does not fit: a subject-safe name: lower-case letters, digits and '-', starting with a letter, at most 63 characters`,
		path + `, document 1 (Flow Orders): spec.duplicates: value must be one of "update", "skip", "error"`,
		path + `, document 1 (Flow Orders): spec.mapping.fieldz: unknown field; use defaults, exclude, fields, filter, validations, valueMaps`,
		path + `, document 1 (Flow Orders): spec.target: required field is missing`,
		path + `, document 2 (Integrator shop-to-erp): metadata.tenant: required field is missing`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("Load error:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if len(perr.Problems) != len(want) || perr.Problems[3].Path != "spec.target" || perr.Problems[4].Document != 2 {
		t.Errorf("problems = %+v", perr.Problems)
	}
}

func TestLoadReportsEveryFile(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.yaml", "apiVersion: syncline.dev/v1\nkind: Tenant\nmetadata: {name: A}\n")
	b := writeFile(t, dir, "b.yaml", "apiVersion: syncline.dev/v1\nkind: Tenant\nmetadata: {name: b, nick: x}\n")
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), a+", document 1 (Tenant A): metadata.name") ||
		!strings.Contains(err.Error(), b+", document 1 (Tenant b): metadata.nick: unknown field") {
		t.Errorf("Load = %v, want the problems of both files", err)
	}
}

func TestLoadYAMLSyntaxErrorGivesTheLine(t *testing.T) {
	content := "apiVersion: syncline.dev/v1\nkind: Tenant\nmetadata: {name: acme}\n---\napiVersion: syncline.dev/v1\nkind: Tenant\nmetadata:\n  name: [beta\n"
	path := writeFile(t, t.TempDir(), "broken.yaml", content)
	_, err := Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+", document 2: line ") {
		t.Errorf("Load = %v, want %s, document 2: line N: ...", err, path)
	}
}

func TestLoadSkipsEmptyDocuments(t *testing.T) {
	content := "---\n# nothing here\n---\napiVersion: syncline.dev/v1\nkind: Tenant\nmetadata: {name: acme}\n---\n---\n" +
		"apiVersion: syncline.dev/v1\nkind: Tenant\nmetadata: {name: Beta}\n---\n"
	path := writeFile(t, t.TempDir(), "sparse.yaml", content)
	_, err := Load(path)
	// Empty documents still count, so that the number matches the file.
	if err == nil || !strings.Contains(err.Error(), path+", document 4 (Tenant Beta): metadata.name") {
		t.Errorf("Load = %v, want the problem in document 4", err)
	}
	path = writeFile(t, t.TempDir(), "ok.yaml", strings.Replace(content, "Beta", "beta", 1))
	rs, err := Load(path)
	if err != nil || len(rs) != 2 {
		t.Errorf("Load = %d resources, %v; want 2", len(rs), err)
	}
}

func TestLoadKeepsNumbersAndStrings(t *testing.T) {
	content := flow + `    defaults:
      employee_number: 999999
      big: 9007199254740992
      negative: -12
      hex: 0x1F
      ratio: 2.5
      exp: 1e3
      since: 2024-01-01
      at: 2024-01-01T10:00:00Z
      tagged: !!timestamp 2024-02-03
      zip: "01234"
      yes_word: yes
      off: null
      "on": true
      nested:
        - 1
        - {2: two}
    valueMaps:
      terms:
        values:
          30: NET30
          true: "yes"
          2.5: half
`
	path := writeFile(t, t.TempDir(), "numbers.yaml", content)
	rs, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := protojson.Marshal(rs[0].Spec)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(js), " ", "")
	for _, want := range []string{
		`"employee_number":999999`, `"big":9007199254740992`, `"negative":-12`, `"hex":31`, `"ratio":2.5`, `"exp":1000`,
		`"since":"2024-01-01"`, `"at":"2024-01-01T10:00:00Z"`, `"tagged":"2024-02-03"`, `"zip":"01234"`, `"yes_word":"yes"`,
		`"off":null`, `"on":true`, `"nested":[1,{"2":"two"}]`,
		`"values":{"2.5":"half","30":"NET30","true":"yes"}`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("spec JSON %s\nlacks %s", s, want)
		}
	}
}

func TestLoadAnchorsAndMergeKeys(t *testing.T) {
	content := `apiVersion: syncline.dev/v1
kind: Endpoint
metadata: {tenant: acme, name: erp}
spec:
  type: sql
  description: ERP
  settings: &base
    driver: sqlite
    table: orders
---
apiVersion: syncline.dev/v1
kind: Endpoint
metadata: {tenant: acme, name: erp-archive}
spec:
  type: sql
  description: ERP archive
  settings:
    <<: *base
    table: archive
`
	rs, err := Load(writeFile(t, t.TempDir(), "anchors.yaml", content))
	if err != nil {
		t.Fatal(err)
	}
	got := rs[1].Spec.AsMap()["settings"].(map[string]any)
	if got["driver"] != "sqlite" || got["table"] != "archive" || len(got) != 2 {
		t.Errorf("merged settings = %v, want driver from the anchor and the mapping's own table", got)
	}
}

func TestLoadTenantKeepsNoTenant(t *testing.T) {
	content := "apiVersion: syncline.dev/v1\nkind: Tenant\nmetadata: {name: acme, tenant: acme, uid: 0190a4b2-7c1e-7d3a-9f00-1234567890ab}\n"
	rs, err := Load(writeFile(t, t.TempDir(), "tenant.yaml", content))
	if err != nil {
		t.Fatal(err)
	}
	md := rs[0].Metadata
	if md.Tenant != "" || md.Uid != "0190a4b2-7c1e-7d3a-9f00-1234567890ab" || len(rs[0].Spec.GetFields()) != 0 {
		t.Errorf("metadata = %v, spec = %v; want no tenant, the uid and an empty spec", md, rs[0].Spec)
	}
}
