package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
)

func newMapping(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mapping",
		Short: "Show the default mappings that ship with the platform",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "defaults ENTITY",
		Short: "Show an entity's default mapping (a flow overrides only the fields it names)",
		Long: `Print the mapping every flow of ENTITY starts from, in the shape of a
flow's spec.mapping. A flow's own mapping overrides the fields, defaults,
value maps and validations it names; mapping.exclude drops default fields
its target does not have ("*" drops them all).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := g.resources()
			if err != nil {
				return err
			}
			resp, err := client.GetDefaultMapping(cmd.Context(), &controlplanev1.GetDefaultMappingRequest{Entity: strings.ToLower(args[0])})
			if err != nil {
				return explain(err, g.server)
			}
			out, err := yaml.Marshal(map[string]any{"mapping": resp.Mapping.AsMap()})
			if err != nil {
				return fmt.Errorf("printing the mapping: %w", err)
			}
			fmt.Fprintf(g.out, "# The default mapping of %s; entities with one: %s\n%s", resp.Entity, strings.Join(resp.Entities, ", "), out)
			return nil
		},
	})
	return cmd
}
