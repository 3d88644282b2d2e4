package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	"github.com/syncline/syncline/pkg/resourcefile"
)

func newApply(g *globals) *cobra.Command {
	var files []string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE|FOLDER",
		Short: "Create or update resources from YAML files",
		Long: `Create or update tenants, integrators, endpoints and flows from YAML files
(several documents per file allowed; a folder means every .yaml/.yml file in it).
All resources are checked first; if one is wrong, nothing changes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return errors.New("no files: pass -f FILE or -f FOLDER")
			}
			resources, err := loadResources(files...)
			if err != nil {
				return err
			}
			opts, err := g.clientOptions()
			if err != nil {
				return err
			}
			client := controlplanev1connect.NewResourceServiceClient(httpClient(), g.server, opts...)
			resp, err := client.Apply(cmd.Context(), &controlplanev1.ApplyRequest{Resources: resources, DryRun: dryRun})
			if err != nil {
				return explain(err, g.server)
			}
			suffix := ""
			if dryRun {
				suffix = " (dry run)"
			}
			for _, r := range resp.Results {
				name := r.Name
				if r.Kind != "Tenant" {
					name = r.Tenant + "/" + r.Name
				}
				fmt.Fprintf(g.out, "%s %s %s%s\n", strings.ToLower(r.Kind), name, changeWord(r.Change), suffix)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "YAML file or folder (repeatable)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check and report what would change, change nothing")
	return cmd
}

func changeWord(c controlplanev1.Change) string {
	switch c {
	case controlplanev1.Change_CHANGE_CREATED:
		return "created"
	case controlplanev1.Change_CHANGE_UPDATED:
		return "updated"
	default:
		return "unchanged"
	}
}

// loadResources reads YAML files and folders (every .yaml/.yml file of a
// folder, in name order) and checks every document against the resource
// schema. Errors name the file, the document and the path of each problem.
func loadResources(paths ...string) ([]*controlplanev1.Resource, error) {
	return resourcefile.Load(paths...)
}
