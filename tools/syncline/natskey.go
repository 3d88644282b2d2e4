package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/syncline/syncline/pkg/natsauth"
)

func newNATSKey(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "nats-key",
		Short: "Make the key of the NATS auth callout, for an external NATS server",
		Long: `Make the key pair that signs the answers to the NATS server's auth callout.
The public key goes in the server's authorization.auth_callout.issuer; the seed
is the control plane's SYNCLINE_NATS_CALLOUT_SEED (keep it secret, like the
master key). syncline dev makes its own in its data folder.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			seed, err := natsauth.NewIssuerSeed()
			if err != nil {
				return err
			}
			issuer, err := natsauth.ParseIssuer(seed)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "issuer (the server's auth_callout.issuer): %s\nseed (%s, secret):        %s\n", issuer.PublicKey(), natsauth.EnvCalloutSeed, seed)
			return nil
		},
	}
}
