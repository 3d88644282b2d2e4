// Package resourcefile reads and writes the YAML files that declare
// Syncline's resources (Tenant, Integrator, Endpoint, Flow) for
// `syncline apply -f`: Load checks every document against the JSON Schema
// that Schema returns, Encode writes resources back in the same shape, and
// Diff shows how a spec changes.
package resourcefile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/types/known/structpb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
)

// Load reads resources from files and folders, in the order given; a folder
// means every .yaml and .yml file directly in it, in name order (a .json
// file is read when it is named). A file may hold several documents
// separated by "---" (empty documents are skipped), or be one JSON array of
// resources.
//
// Only regular files are read (a device, a pipe or a socket is refused
// before it is opened, so `-f /dev/zero` cannot fill the memory), each of at
// most MaxFileSize bytes.
//
// Every document is checked against the schema before any resource is
// returned. If any is wrong, Load returns an *Error listing every problem of
// every document (a file with a YAML syntax error stops at that error), and
// no resources. A file or folder that cannot be read is returned as is.
func Load(paths ...string) ([]*controlplanev1.Resource, error) {
	var files []string
	for _, p := range paths {
		fs, err := expand(p)
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
	}
	var out []*controlplanev1.Resource
	var problems []Problem
	for _, f := range files {
		data, err := readFile(f)
		if err != nil {
			return nil, err
		}
		rs, err := Parse(f, data)
		var perr *Error
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
		return nil, &Error{Problems: problems}
	}
	return out, nil
}

// MaxFileSize is the largest resource file Load reads, 4 MiB: several times
// what the control plane takes in one apply of its largest resources, and a
// bound on what a wrong path (a log file, a disk image) makes the CLI read.
const MaxFileSize = 4 << 20

// readFile reads one resource file, refusing what is not a regular file or is
// larger than MaxFileSize. The checks are made again on the opened file, and
// the read is bounded, for a file that is swapped or grows meanwhile.
func readFile(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := checkFile(path, info); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	if info, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := checkFile(path, info); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, tooLarge(path, int64(len(data)))
	}
	return data, nil
}

// checkFile refuses a path that is not a regular file, or is too large.
func checkFile(path string, info fs.FileInfo) error {
	if !info.Mode().IsRegular() {
		return fmt.Errorf("reading %s: it is %s, not a regular file; give a YAML file, or a folder of them", path, fileKind(info.Mode()))
	}
	if info.Size() > MaxFileSize {
		return tooLarge(path, info.Size())
	}
	return nil
}

func tooLarge(path string, size int64) error {
	return fmt.Errorf("reading %s: it is %d bytes, above the limit of %d (4 MiB) for a resource file; split it into several files in a folder", path, size, MaxFileSize)
}

// fileKind names what a path that is not a regular file is.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder (inside a folder only its files are read)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	default:
		return "a special file (" + m.Type().String() + ")"
	}
}

// expand lists the files a path stands for.
func expand(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if !info.IsDir() {
		if err := checkFile(path, info); err != nil {
			return nil, err
		}
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("reading folder %s: %w", path, err)
	}
	var files []string
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	slices.Sort(files)
	return files, nil
}

// Parse reads the resources of one file's content, as Load does; name is
// what problems call the file (a path, or "-" for standard input). A file
// that is one list (a JSON array of resources, as `syncline get -o json`
// writes it) holds one document per element.
func Parse(name string, data []byte) ([]*controlplanev1.Resource, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []*controlplanev1.Resource
	var problems []Problem
	for n := 1; ; n++ {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			problems = append(problems, Problem{File: name, Document: n, Message: strings.TrimPrefix(err.Error(), "yaml: ")})
			break
		}
		docs := []*yaml.Node{&node}
		if n == 1 && len(node.Content) == 1 && node.Content[0].Kind == yaml.SequenceNode {
			docs = node.Content[0].Content
		}
		for i, doc := range docs {
			r, found := parseDocument(name, n+i, doc)
			problems = append(problems, found...)
			if r != nil {
				out = append(out, r)
			}
		}
	}
	if len(problems) > 0 {
		return nil, &Error{Problems: problems}
	}
	return out, nil
}

// parseDocument reads one document: a resource, or the problems with it, or
// neither for an empty document (e.g. after a trailing ---).
func parseDocument(name string, n int, node *yaml.Node) (*controlplanev1.Resource, []Problem) {
	var c converter
	v := c.value("", node)
	if v == nil && len(c.problems) == 0 {
		return nil, nil
	}
	found := c.problems
	if len(found) == 0 {
		found = append(validate(v), semantic(v)...)
	}
	if len(found) > 0 {
		label := resourceLabel(v)
		problems := make([]Problem, len(found))
		for i, l := range found {
			problems[i] = Problem{File: name, Document: n, Resource: label, Path: l.path, Message: l.message}
		}
		return nil, problems
	}
	r, err := resource(v.(map[string]any))
	if err != nil {
		return nil, []Problem{{File: name, Document: n, Resource: resourceLabel(v), Path: "spec", Message: err.Error()}}
	}
	return r, nil
}

// semantic checks what the schema cannot say: a Tenant's metadata.tenant, if
// given, is its own name (the server takes that, and nothing else).
func semantic(v any) []located {
	doc, _ := v.(map[string]any)
	md, _ := doc["metadata"].(map[string]any)
	if doc["kind"] == "Tenant" && md["tenant"] != nil && md["tenant"] != md["name"] {
		return []located{{"metadata.tenant", "a Tenant has no tenant; leave it out"}}
	}
	return nil
}

// resourceLabel is "Flow orders", or as much of it as the document gives.
func resourceLabel(v any) string {
	doc, _ := v.(map[string]any)
	kind, _ := doc["kind"].(string)
	md, _ := doc["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	return strings.TrimSpace(kind + " " + name)
}

// resource builds the API's resource from a document the schema accepted.
// A Tenant's tenant is left empty, as the API returns it.
func resource(doc map[string]any) (*controlplanev1.Resource, error) {
	md := doc["metadata"].(map[string]any)
	str := func(v any) string { s, _ := v.(string); return s }
	spec, _ := doc["spec"].(map[string]any)
	st, err := structpb.NewStruct(spec)
	if err != nil {
		return nil, err
	}
	r := &controlplanev1.Resource{
		ApiVersion: str(doc["apiVersion"]),
		Kind:       str(doc["kind"]),
		Metadata:   &controlplanev1.Metadata{Name: str(md["name"]), Tenant: str(md["tenant"]), Uid: str(md["uid"])},
		Spec:       st,
	}
	if r.Kind == "Tenant" {
		r.Metadata.Tenant = ""
	}
	return r, nil
}
