package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
)

var kindAliases = map[string]string{
	"tenant": "Tenant", "tenants": "Tenant",
	"integrator": "Integrator", "integrators": "Integrator",
	"endpoint": "Endpoint", "endpoints": "Endpoint",
	"flow": "Flow", "flows": "Flow",
}

func newGet(g *globals) *cobra.Command {
	var tenant, output string
	cmd := &cobra.Command{
		Use:   "get KIND",
		Short: "List tenants, integrators, endpoints or flows",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, ok := kindAliases[strings.ToLower(args[0])]
			if !ok {
				return fmt.Errorf("kind %q: use tenants, integrators, endpoints or flows", args[0])
			}
			opts, err := g.clientOptions()
			if err != nil {
				return err
			}
			client := controlplanev1connect.NewResourceServiceClient(httpClient(), g.server, opts...)
			resp, err := client.ListResources(cmd.Context(), &controlplanev1.ListResourcesRequest{Kind: kind, Tenant: tenant})
			if err != nil {
				return explain(err, g.server)
			}
			if output == "json" {
				enc := json.NewEncoder(g.out)
				enc.SetIndent("", "  ")
				list := make([]map[string]any, 0, len(resp.Resources))
				for _, r := range resp.Resources {
					list = append(list, map[string]any{
						"apiVersion": r.ApiVersion, "kind": r.Kind,
						"metadata": map[string]any{"name": r.Metadata.GetName(), "tenant": r.Metadata.GetTenant()},
						"spec":     r.Spec.AsMap(), "generation": r.Generation,
					})
				}
				return enc.Encode(list)
			}
			tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TENANT\tNAME\tGENERATION\tUPDATED")
			for _, r := range resp.Resources {
				t := r.Metadata.GetTenant()
				if t == "" {
					t = r.Metadata.GetName()
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", t, r.Metadata.GetName(), r.Generation, r.UpdatedAt.AsTime().Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this tenant's resources")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}
