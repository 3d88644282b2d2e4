package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/resourcefile"
)

func newApply(g *globals) *cobra.Command {
	var files []string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE|FOLDER",
		Short: "Create or update resources from YAML files",
		Long: `Create or update tenants, integrators, endpoints and flows from YAML files
(several documents per file allowed; a folder means every .yaml/.yml file in it;
a file may also be the JSON array that syncline get -o json prints).
All resources are checked first; if one is wrong, nothing changes. Only
regular files are read, each of at most 4 MiB, and one apply takes at most
1,000 resources (the README's "Limits" table lists every limit).

Every resource is reported on one line; a created or updated one is followed
by the change to its spec as a diff. --dry-run reports the same and changes
nothing. Creating an integrator prints its token: it is shown only this once
(syncline token rotate gives it a new one).`,
		Example: `  syncline apply -f examples/orders.yaml --dry-run
  syncline apply -f examples/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return errors.New("no files: pass -f FILE or -f FOLDER")
			}
			resources, err := loadResources(files...)
			if err != nil {
				return err
			}
			client, err := g.resources()
			if err != nil {
				return err
			}
			resp, err := client.Apply(cmd.Context(), &controlplanev1.ApplyRequest{Resources: resources, DryRun: dryRun})
			if err != nil {
				return explain(err, g.server)
			}
			writeResults(g.out, resp.Results, dryRun)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "YAML file or folder (repeatable)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check and report what would change, change nothing")
	return cmd
}

// tokenWarning follows a token wherever the CLI prints one: the server keeps
// only its hash.
const tokenWarning = "(store it now: it is shown only this once)"

// writeResults reports an apply: a line per resource, in the order of the
// files; under a created or updated one its diff, indented; under a created
// integrator its token.
func writeResults(w io.Writer, results []*controlplanev1.ApplyResult, dryRun bool) {
	suffix := ""
	if dryRun {
		suffix = " (dry run)"
	}
	for _, r := range results {
		fmt.Fprintf(w, "%s %s %s%s\n", strings.ToLower(r.Kind), resourceName(r.Kind, r.Tenant, r.Name), changeWord(r.Change), suffix)
		if r.Diff != "" {
			for _, line := range strings.Split(strings.TrimSuffix(r.Diff, "\n"), "\n") {
				fmt.Fprintf(w, "  %s\n", line)
			}
		}
		if r.Token != "" {
			fmt.Fprintf(w, "  token: %s  %s\n", r.Token, tokenWarning)
		}
	}
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

// loadResources reads resource files and folders (YAML documents, or a JSON
// array as get -o json writes it), checked against the schema.
func loadResources(paths ...string) ([]*controlplanev1.Resource, error) {
	return resourcefile.Load(paths...)
}
