package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/integrator"
	"github.com/syncline/syncline/pkg/resourcefile"
)

func newGet(g *globals) *cobra.Command {
	var tenant, output string
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "List tenants, integrators, endpoints or flows, or show one",
		Long: `List the resources of a kind (tenants, integrators, endpoints or flows;
any case, singular or plural), or show the one named NAME.

With the admin token, --tenant selects a tenant (and is needed to show one
resource of a tenant); an integrator token sees its own tenant only, and
--tenant may be left out. -o yaml and -o json print resource files that
syncline apply -f takes back unchanged; credentials show as "(secret)",
which apply reads as "keep the stored value".`,
		Example: `  syncline get tenants
  syncline get flows --tenant acme
  syncline get flow orders --tenant acme -o yaml > orders-flow.yaml`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, err := parseKind(args[0])
			if err != nil {
				return err
			}
			if output != "table" && output != "yaml" && output != "json" {
				return fmt.Errorf("-o %q: use table, yaml or json", output)
			}
			client, err := g.resources()
			if err != nil {
				return err
			}
			var list []*controlplanev1.Resource
			if len(args) == 2 {
				resp, err := client.GetResource(cmd.Context(), &controlplanev1.GetResourceRequest{Kind: kind, Tenant: tenant, Name: args[1]})
				if err != nil {
					return explain(err, g.server)
				}
				list = []*controlplanev1.Resource{resp.Resource}
			} else {
				resp, err := client.ListResources(cmd.Context(), &controlplanev1.ListResourcesRequest{Kind: kind, Tenant: tenant})
				if err != nil {
					return explain(err, g.server)
				}
				list = resp.Resources
			}
			if output != "table" {
				return resourcefile.Encode(g.out, output, list)
			}
			if len(list) == 0 {
				fmt.Fprintf(g.errOut, "no %ss\n", strings.ToLower(kind))
				return nil
			}
			if err := writeTable(g.out, kind, list); err != nil {
				return err
			}
			if kind != kindIntegrator || len(args) != 2 {
				return nil
			}
			// One integrator: its services, and the flows that make each.
			resp, err := client.ListResources(cmd.Context(), &controlplanev1.ListResourcesRequest{Kind: kindFlow, Tenant: list[0].GetMetadata().GetTenant()})
			if err != nil {
				return explain(err, g.server)
			}
			fmt.Fprintln(g.out)
			return writeServices(g.out, args[1], resp.Resources)
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "the tenant (with the admin token; default: every tenant when listing)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, yaml or json")
	return cmd
}

// columns are what a table shows of each kind: a header and a cell per
// resource.
var columns = map[string][]struct {
	header string
	cell   func(r *controlplanev1.Resource) string
}{
	kindTenant: {
		{"NAME", nameOf},
		{"DISPLAY NAME", specField("displayName", "-")},
		{"GENERATION", generation},
		{"UPDATED", updated},
	},
	kindIntegrator: {
		{"TENANT", tenantOf},
		{"NAME", nameOf},
		// The server's default stage; a spec without one is active.
		{"STAGE", specField("stage", "active")},
		{"UPDATED", updated},
	},
	kindEndpoint: {
		{"TENANT", tenantOf},
		{"NAME", nameOf},
		{"TYPE", specField("type", "-")},
		{"DESCRIPTION", specField("description", "-")},
	},
	kindFlow: {
		{"TENANT", tenantOf},
		{"NAME", nameOf},
		{"INTEGRATOR", specField("integrator", "-")},
		{"SOURCE", specField("source", "-")},
		{"TARGET", specField("target", "-")},
		{"ENTITY", specField("entity", "-")},
		{"GENERATION", generation},
		{"STATE", flowState},
		{"WAITING", waiting},
		{"SINCE", pausedSince},
		{"LAST POLL", lastPoll},
		{"CURSOR", cursor},
		{"LAST ERROR", lastError},
	},
}

// lastPoll says how the last poll of a polled flow's source went: when it began, its
// outcome and how many changes it published; "-" for a flow whose source publishes.
func lastPoll(r *controlplanev1.Resource) string {
	p := r.GetStatus().GetPolls()
	switch {
	case p == nil:
		return "-"
	case p.GetOutcome() == "":
		return "due"
	}
	at := p.GetStarted().AsTime().Local().Format("2006-01-02 15:04:05")
	if p.GetOutcome() == "running" {
		return fmt.Sprintf("running since %s (%d changes)", at, p.GetChanges())
	}
	return fmt.Sprintf("%s %s (%d changes)", at, p.GetOutcome(), p.GetChanges())
}

// cursorWidth keeps a cursor's cell short; -o yaml shows it whole.
const cursorWidth = 32

func cursor(r *controlplanev1.Resource) string {
	p := r.GetStatus().GetPolls()
	switch c := p.GetCursor(); {
	case p == nil:
		return "-"
	case c == "":
		return "(start)"
	case len([]rune(c)) > cursorWidth:
		return string([]rune(c)[:cursorWidth-1]) + "…"
	default:
		return c
	}
}

// flowState is a flow's state, "-" when the server could not tell.
func flowState(r *controlplanev1.Resource) string {
	if s := r.GetStatus().GetState(); s != "" {
		return s
	}
	return "-"
}

func waiting(r *controlplanev1.Resource) string {
	if r.GetStatus() == nil {
		return "-"
	}
	return fmt.Sprint(r.GetStatus().GetWaiting())
}

func pausedSince(r *controlplanev1.Resource) string {
	if r.GetStatus().GetSince() == nil {
		return "-"
	}
	return r.GetStatus().GetSince().AsTime().Local().Format("2006-01-02 15:04:05")
}

// lastErrorWidth keeps a table row on one screen line; -o yaml shows the
// whole error.
const lastErrorWidth = 80

func lastError(r *controlplanev1.Resource) string {
	e := r.GetStatus().GetLastError()
	if e == "" {
		// A failed poll of the flow's source.
		e = r.GetStatus().GetPolls().GetError()
	}
	e = strings.Join(strings.Fields(e), " ")
	switch {
	case e == "":
		return "-"
	case len([]rune(e)) > lastErrorWidth:
		return string([]rune(e)[:lastErrorWidth-1]) + "…"
	}
	return e
}

func writeTable(w io.Writer, kind string, list []*controlplanev1.Resource) error {
	cols := columns[kind]
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, c := range cols {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, c.header)
	}
	fmt.Fprintln(tw)
	for _, r := range list {
		for i, c := range cols {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, c.cell(r))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// writeServices lists the services of integrator with the flows (of all
// flows) that make each: name, entity, source -> target, and for documents
// how far the target takes them.
func writeServices(w io.Writer, name string, flows []*controlplanev1.Resource) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tFLOW\tENTITY\tSOURCE -> TARGET\tDUPLICATES\tDOCUMENT STATE")
	var missing []string
	for _, svc := range integrator.Services(name, flows) {
		for _, f := range svc.Flows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s -> %s\t%s\t%s\n", svc.Name, f.Name, orDash(f.Entity),
				orDash(f.Source), orDash(f.Target), f.Duplicates, orDash(f.DocumentState))
		}
		if len(svc.Flows) == 0 {
			missing = append(missing, fmt.Sprintf("%s: not set up; apply a flow of entity %s", svc.Name, svc.Entities[0]))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, m := range missing {
		fmt.Fprintln(w, m)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func nameOf(r *controlplanev1.Resource) string   { return r.GetMetadata().GetName() }
func tenantOf(r *controlplanev1.Resource) string { return r.GetMetadata().GetTenant() }
func generation(r *controlplanev1.Resource) string {
	return fmt.Sprint(r.GetGeneration())
}
func updated(r *controlplanev1.Resource) string {
	return r.GetUpdatedAt().AsTime().Local().Format("2006-01-02 15:04:05")
}

// specField shows a string field of the spec on one line, or def when the
// spec has none.
func specField(field, def string) func(r *controlplanev1.Resource) string {
	return func(r *controlplanev1.Resource) string {
		s := strings.Join(strings.Fields(r.GetSpec().GetFields()[field].GetStringValue()), " ")
		if s == "" {
			return def
		}
		return s
	}
}
