package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
)

// ledgerEndpoint has a credential, which no output may show.
const ledgerEndpoint = `apiVersion: syncline.dev/v1
kind: Endpoint
metadata:
  tenant: acme
  name: ledger
spec:
  type: sql
  description: The accounting database
  settings:
    driver: postgres
    dsn: postgres://syncline@127.0.0.1:5432/accounting
    table: invoices
  credentials:
    password: correct-horse-battery
`

const ledgerPassword = "correct-horse-battery"

// withExample applies the example and an endpoint with a credential.
func withExample(t *testing.T) cli {
	t.Helper()
	c := newCLI(t)
	ledger := filepath.Join(t.TempDir(), "ledger.yaml")
	if err := os.WriteFile(ledger, []byte(ledgerEndpoint), 0o600); err != nil {
		t.Fatal(err)
	}
	c.must("apply", "-f", example("orders.yaml"), "-f", ledger)
	return c
}

// stdout runs syncline and returns its standard output only.
func (c cli) stdout(args ...string) string {
	c.t.Helper()
	out, errOut, err := execute(&globals{in: strings.NewReader("")}, append(args, c.flags...)...)
	if err != nil {
		c.t.Fatalf("syncline %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

const timestamp = `\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`

func TestGetEveryKindInEveryFormat(t *testing.T) {
	c := withExample(t)
	tests := []struct {
		kind string // as typed: any case, singular or plural
		name string
		// list and one are the tables of all and of the named one.
		list, one string
		// names are what the list holds, in order.
		names []string
	}{
		{
			kind:  "Tenants",
			name:  "acme",
			list:  `NAME +DISPLAY NAME +GENERATION +UPDATED\nacme +ACME Trading +1 +` + timestamp + `\n`,
			names: []string{"acme"},
		},
		{
			kind: "integrator",
			name: "shop-to-erp",
			list: `TENANT +NAME +STAGE +UPDATED\nacme +shop-to-erp +active +` + timestamp + `\n`,
			// One integrator shows its services and their flows.
			one: `TENANT +NAME +STAGE +UPDATED\nacme +shop-to-erp +active +` + timestamp + `\n\n` +
				`SERVICE +FLOW +ENTITY +SOURCE -> TARGET +DUPLICATES +DOCUMENT STATE\n` +
				`orders +orders +order +shop -> erp +skip +-\n` +
				`vouchers: not set up; apply a flow of entity invoice\n` +
				`payments: not set up; apply a flow of entity payment\n`,
			names: []string{"shop-to-erp"},
		},
		{
			kind: "ENDPOINTS",
			name: "ledger",
			list: `TENANT +NAME +TYPE +DESCRIPTION\n` +
				`acme +erp +sql +The ERP's order table\n` +
				`acme +ledger +sql +The accounting database\n` +
				`acme +shop +nats +The webshop; publishes order changes to ingest.acme.shop.order\n`,
			one:   `TENANT +NAME +TYPE +DESCRIPTION\nacme +ledger +sql +The accounting database\n`,
			names: []string{"erp", "ledger", "shop"},
		},
		{
			kind:  "Flow",
			name:  "orders",
			list:  `TENANT +NAME +INTEGRATOR +SOURCE +TARGET +ENTITY +GENERATION +STATE +WAITING +SINCE +LAST POLL +CURSOR +LAST ERROR\nacme +orders +shop-to-erp +shop +erp +order +1 +active +0 +- +- +- +-\n`,
			names: []string{"orders"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			c := cli{t: t, flags: c.flags}
			one := tt.one
			if one == "" {
				one = tt.list
			}
			for _, check := range []struct {
				args []string
				want string
			}{
				{[]string{"get", tt.kind, "--tenant", "acme"}, tt.list},
				{[]string{"get", tt.kind, tt.name, "--tenant", "acme"}, one},
			} {
				out := c.stdout(check.args...)
				if !regexp.MustCompile(`^` + check.want + `$`).MatchString(out) {
					t.Errorf("syncline %s printed\n%s\nwant it to match\n%s", strings.Join(check.args, " "), out, check.want)
				}
				if strings.Contains(out, ledgerPassword) {
					t.Errorf("syncline %s printed a credential:\n%s", strings.Join(check.args, " "), out)
				}
			}
			for _, format := range []string{"yaml", "json"} {
				list := c.stdout("get", tt.kind, "--tenant", "acme", "-o", format)
				one := c.stdout("get", tt.kind, tt.name, "--tenant", "acme", "-o", format)
				for _, got := range []struct {
					out   string
					names []string
				}{{list, tt.names}, {one, []string{tt.name}}} {
					if strings.Contains(got.out, ledgerPassword) {
						t.Errorf("-o %s printed a credential:\n%s", format, got.out)
					}
					rs := parseOutput(t, format, got.out)
					var names []string
					for _, r := range rs {
						names = append(names, r.Metadata.Name)
						if want, _ := parseKind(tt.kind); r.Kind != want {
							t.Errorf("-o %s printed a %s, want %s", format, r.Kind, tt.kind)
						}
					}
					if strings.Join(names, ",") != strings.Join(got.names, ",") {
						t.Errorf("-o %s printed %v, want %v:\n%s", format, names, got.names, got.out)
					}
				}
			}
		})
	}
	yaml := c.stdout("get", "endpoint", "ledger", "--tenant", "acme", "-o", "yaml")
	if !strings.Contains(yaml, "password: (secret)") {
		t.Errorf("the endpoint's credential does not show as (secret):\n%s", yaml)
	}
}

// parseOutput reads what get -o format printed as apply would.
func parseOutput(t *testing.T, format, out string) []*controlplanev1.Resource {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out."+format)
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := loadResources(path)
	if err != nil {
		t.Fatalf("apply would not take what get -o %s printed: %v\n%s", format, err, out)
	}
	return rs
}

// TestGetOutputAppliesUnchanged applies what get -o yaml and -o json print,
// of one resource and of every resource of each kind: nothing changes.
func TestGetOutputAppliesUnchanged(t *testing.T) {
	c := withExample(t)
	dir := t.TempDir()
	for _, format := range []string{"yaml", "json"} {
		path := filepath.Join(dir, "flow."+format)
		if err := os.WriteFile(path, []byte(c.stdout("get", "flow", "orders", "--tenant", "acme", "-o", format)), 0o600); err != nil {
			t.Fatal(err)
		}
		if out := c.must("apply", "-f", path); out != "flow acme/orders unchanged\n" {
			t.Errorf("applying get flow orders -o %s printed\n%s", format, out)
		}

		var paths []string
		for _, kind := range []string{"tenants", "integrators", "endpoints", "flows"} {
			path := filepath.Join(dir, kind+"."+format)
			if err := os.WriteFile(path, []byte(c.stdout("get", kind, "-o", format)), 0o600); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, "-f", path)
		}
		out := c.must(append([]string{"apply"}, paths...)...)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 6 {
			t.Errorf("applying every resource as -o %s printed %d lines, want 6:\n%s", format, len(lines), out)
		}
		for _, l := range lines {
			if !strings.HasSuffix(l, " unchanged") {
				t.Errorf("applying every resource as -o %s changed something:\n%s", format, out)
				break
			}
		}
	}
}

func TestGetRefusesWhatItCannotShow(t *testing.T) {
	c := withExample(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"get", "pipelines"}, `kind "pipelines": use tenant, integrator, endpoint or flow`},
		{[]string{"get", "flows", "-o", "xml"}, `-o "xml": use table, yaml or json`},
		{[]string{"get", "flow", "returns", "--tenant", "acme"}, `Flow acme/returns`},
	}
	for _, tt := range tests {
		out, err := c.run(tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("syncline %s = %v\n%s\nwant an error with %q", strings.Join(tt.args, " "), err, out, tt.want)
		}
	}
}

const accountingFlows = `apiVersion: syncline.dev/v1
kind: Endpoint
metadata: {tenant: acme, name: books}
spec:
  type: rest
  description: The accounting system's API
  settings:
    base_url: https://93.184.215.14/api
    entities:
      invoice: {path: /invoices, canonical: true, lookup: {number: number}, state_field: state, states: [draft, posted]}
      payment: {path: /payments, canonical: true}
      customer: {path: /customers, canonical: true, lookup: {email: email, name: name}}
      product: {path: /products, canonical: true, lookup: {sku: sku}}
---
apiVersion: syncline.dev/v1
kind: Flow
metadata: {tenant: acme, name: invoices}
spec: {integrator: shop-to-erp, source: shop, target: books, entity: invoice, document: {state: posted}}
---
apiVersion: syncline.dev/v1
kind: Flow
metadata: {tenant: acme, name: receipts}
spec: {integrator: shop-to-erp, source: shop, target: books, entity: payment}
`

// TestGetIntegratorShowsItsServices: an integrator with invoice and payment flows offers the
// vouchers and payments services, each with its flows, beside its orders.
func TestGetIntegratorShowsItsServices(t *testing.T) {
	c := withExample(t)
	f := filepath.Join(t.TempDir(), "accounting.yaml")
	if err := os.WriteFile(f, []byte(accountingFlows), 0o600); err != nil {
		t.Fatal(err)
	}
	c.must("apply", "-f", f)
	out := c.stdout("get", "integrator", "shop-to-erp", "--tenant", "acme")
	want := `(?s)SERVICE +FLOW +ENTITY +SOURCE -> TARGET +DUPLICATES +DOCUMENT STATE\n` +
		`vouchers +invoices +invoice +shop -> books +skip +posted\n` +
		`payments +receipts +payment +shop -> books +skip +-\n` +
		`orders +orders +order +shop -> erp +skip +-\n$`
	if !regexp.MustCompile(want).MatchString(out) {
		t.Errorf("syncline get integrator printed\n%s\nwant it to end with\n%s", out, want)
	}
}
