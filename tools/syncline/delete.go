package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
)

func newDelete(g *globals) *cobra.Command {
	var tenant string
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete KIND NAME",
		Short: "Delete a tenant, integrator, endpoint or flow, and say what was removed",
		Long: `Delete one resource and print what was removed, one line per kind of thing.

  tenant      erases everything of the tenant: integrators, endpoints, flows,
              tokens, ledger entries, API log records, dead letters and the
              messages on the streams. It asks first (type the tenant's name);
              --yes skips the question, and is needed when stdin is not a
              terminal. Needs the admin token.
  integrator  moves it to its final stage, deleted, and revokes its token; it
              stays listed, so that events still sent for it are refused and
              logged with its name.
  endpoint    refused while flows use it; the error names them.
  flow        removes the flow; its ledger and log stay with the tenant.`,
		Example: `  syncline delete flow orders --tenant acme
  syncline delete tenant acme --yes`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, err := parseKind(args[0])
			if err != nil {
				return err
			}
			name := args[1]
			if kind == kindTenant && !yes {
				if err := confirmTenantDelete(g, name); err != nil {
					return err
				}
			}
			client, err := g.resources()
			if err != nil {
				return err
			}
			resp, err := client.DeleteResource(cmd.Context(), &controlplanev1.DeleteResourceRequest{Kind: kind, Tenant: tenant, Name: name})
			if err != nil {
				return explain(err, g.server)
			}
			printed := false
			for _, r := range resp.Removed {
				// The server counts what it looked for; say what was there.
				if r.Count > 0 {
					fmt.Fprintf(g.out, "removed %d %s\n", r.Count, r.What)
					printed = true
				}
			}
			if !printed {
				fmt.Fprintf(g.out, "nothing to remove: %s %s was already deleted\n", strings.ToLower(kind), resourceName(kind, tenant, name))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "the resource's tenant (not for a tenant; optional with an integrator token)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "delete a tenant without asking")
	return cmd
}

// confirmTenantDelete asks on the terminal before a tenant is erased; the
// answer must be the tenant's name, so that a reflexive "y" erases nothing.
func confirmTenantDelete(g *globals, tenant string) error {
	if !g.interactive {
		return fmt.Errorf("deleting tenant %s erases everything of it and cannot be undone: pass --yes to confirm (stdin is not a terminal, so syncline cannot ask)", tenant)
	}
	fmt.Fprintf(g.errOut, "Deleting tenant %s erases everything of it: integrators, endpoints, flows, tokens,\n"+
		"ledger entries, API log records, dead letters and stream messages. This cannot be undone.\n"+
		"Type the tenant's name to delete it: ", tenant)
	answer, err := bufio.NewReader(g.in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the answer: %w", err)
	}
	switch strings.TrimSpace(answer) {
	case tenant:
		return nil
	case "":
		return fmt.Errorf("tenant %s not deleted", tenant)
	default:
		return fmt.Errorf("tenant %s not deleted: the answer was not its name", tenant)
	}
}
