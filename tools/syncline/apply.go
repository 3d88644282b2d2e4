package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/structpb"
	"gopkg.in/yaml.v3"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
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
			var resources []*controlplanev1.Resource
			for _, f := range files {
				rs, err := loadResources(f)
				if err != nil {
					return err
				}
				resources = append(resources, rs...)
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

// loadResources reads a YAML file, or every YAML file of a folder in name
// order. Errors name the file and the document.
func loadResources(path string) ([]*controlplanev1.Resource, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if !info.IsDir() {
		return loadFile(path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("reading folder %s: %w", path, err)
	}
	var names []string
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
			names = append(names, filepath.Join(path, e.Name()))
		}
	}
	sort.Strings(names)
	var out []*controlplanev1.Resource
	for _, n := range names {
		rs, err := loadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// document is one resource as written in YAML.
type document struct {
	APIVersion string         `yaml:"apiVersion"`
	Kind       string         `yaml:"kind"`
	Metadata   docMetadata    `yaml:"metadata"`
	Spec       map[string]any `yaml:"spec"`
}

type docMetadata struct {
	Name   string `yaml:"name"`
	Tenant string `yaml:"tenant"`
}

func loadFile(path string) ([]*controlplanev1.Resource, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var out []*controlplanev1.Resource
	for n := 1; ; n++ {
		var d document
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s, document %d: %w", path, n, err)
		}
		if d.Kind == "" && d.APIVersion == "" && d.Metadata.Name == "" && d.Spec == nil {
			continue // an empty document, e.g. after a trailing ---
		}
		spec, err := structpb.NewStruct(d.Spec)
		if err != nil {
			return nil, fmt.Errorf("%s, document %d (%s %s): spec: %w", path, n, d.Kind, d.Metadata.Name, err)
		}
		out = append(out, &controlplanev1.Resource{
			ApiVersion: d.APIVersion,
			Kind:       d.Kind,
			Metadata:   &controlplanev1.Metadata{Name: d.Metadata.Name, Tenant: d.Metadata.Tenant},
			Spec:       spec,
		})
	}
}
