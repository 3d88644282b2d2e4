package main

import (
	"fmt"

	"github.com/spf13/cobra"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
)

func newToken(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Rotate or revoke an integrator's token",
		Long: `An integrator's token lets a service use the API for the integrator's
tenant only. The control plane keeps a hash of it: a token is shown once,
when the integrator is created or its token rotated.`,
	}
	var tenant string
	cmd.PersistentFlags().StringVar(&tenant, "tenant", "", "the integrator's tenant (optional with an integrator token)")
	cmd.AddCommand(&cobra.Command{
		Use:   "rotate INTEGRATOR",
		Short: "Give an integrator a new token; the old one stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := g.resources()
			if err != nil {
				return err
			}
			resp, err := client.RotateToken(cmd.Context(), &controlplanev1.RotateTokenRequest{Tenant: tenant, Integrator: args[0]})
			if err != nil {
				return explain(err, g.server)
			}
			fmt.Fprintf(g.out, "integrator %s has a new token; the old one no longer works\n  token: %s  %s\n",
				resourceName(kindIntegrator, tenant, args[0]), resp.Token, tokenWarning)
			return nil
		},
	}, &cobra.Command{
		Use:   "revoke INTEGRATOR",
		Short: "Take an integrator's token away (token rotate gives it a new one)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := g.resources()
			if err != nil {
				return err
			}
			if _, err := client.RevokeToken(cmd.Context(), &controlplanev1.RevokeTokenRequest{Tenant: tenant, Integrator: args[0]}); err != nil {
				return explain(err, g.server)
			}
			fmt.Fprintf(g.out, "integrator %s: token revoked; syncline token rotate gives it a new one\n", resourceName(kindIntegrator, tenant, args[0]))
			return nil
		},
	})
	return cmd
}
