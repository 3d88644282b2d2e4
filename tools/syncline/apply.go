package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
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
All resources are checked first; if one is wrong, nothing changes.

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

// loadResources reads YAML files and folders (every .yaml/.yml file of a
// folder, in name order) and checks every document against the resource
// schema. Errors name the file, the document and the path of each problem.
// A file holding a JSON array, as get -o json writes it, is read element by
// element; element n counts as document n.
func loadResources(paths ...string) ([]*controlplanev1.Resource, error) {
	var out []*controlplanev1.Resource
	var problems []resourcefile.Problem
	for _, p := range paths {
		rs, err := loadPath(p)
		var perr *resourcefile.Error
		if errors.As(err, &perr) {
			problems = append(problems, perr.Problems...)
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	if len(problems) > 0 {
		return nil, &resourcefile.Error{Problems: problems}
	}
	return out, nil
}

func loadPath(path string) ([]*controlplanev1.Resource, error) {
	info, err := os.Stat(path)
	if err != nil || info.IsDir() {
		return resourcefile.Load(path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("[")) {
		return resourcefile.Parse(path, data)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(data, &elems); err != nil {
		return nil, &resourcefile.Error{Problems: []resourcefile.Problem{{File: path, Document: 1, Message: "a file starting with [ is a JSON array of resources: " + err.Error()}}}
	}
	var out []*controlplanev1.Resource
	var problems []resourcefile.Problem
	for i, e := range elems {
		// A JSON object is a YAML document.
		rs, err := resourcefile.Parse(path, e)
		var perr *resourcefile.Error
		if errors.As(err, &perr) {
			for _, p := range perr.Problems {
				p.Document = i + 1
				problems = append(problems, p)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	if len(problems) > 0 {
		return nil, &resourcefile.Error{Problems: problems}
	}
	return out, nil
}
