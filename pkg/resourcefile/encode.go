package resourcefile

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
)

// APIVersion is the resource files' apiVersion, written for a resource that
// carries none.
const APIVersion = "syncline.dev/v1"

// Encode writes resources in the shape Load reads, so that the output can
// be edited and applied again: format "yaml" writes one document per
// resource, "json" one array. Each resource has apiVersion, kind, metadata
// (name; tenant, except for a Tenant; uid when set) and spec, with the
// spec's keys sorted, and a flow's status when the server gave one (as
// kubectl shows a resource's status; Load reads it and apply ignores it).
// Generation and update time are not part of a resource file and are left
// out.
func Encode(w io.Writer, format string, resources []*controlplanev1.Resource) error {
	switch format {
	case "yaml":
		if len(resources) == 0 {
			return nil
		}
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		for _, r := range resources {
			if err := enc.Encode(yamlNode(document(r))); err != nil {
				return fmt.Errorf("encoding %s %s: %w", r.GetKind(), r.GetMetadata().GetName(), err)
			}
		}
		if err := enc.Close(); err != nil {
			return fmt.Errorf("encoding resources: %w", err)
		}
		return nil
	case "json":
		docs := make([]jsonDocument, len(resources))
		for i, r := range resources {
			d := document(r)
			docs[i] = jsonDocument{APIVersion: d.apiVersion, Kind: d.kind, Metadata: d.metadata, Spec: d.spec, Status: d.status}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(docs); err != nil {
			return fmt.Errorf("encoding resources: %w", err)
		}
		return nil
	}
	return fmt.Errorf("output format %q: use yaml or json", format)
}

// doc is a resource as a file holds it.
type doc struct {
	apiVersion, kind string
	metadata         jsonMetadata
	spec             map[string]any
	status           map[string]any
}

type jsonMetadata struct {
	Name   string `json:"name"`
	Tenant string `json:"tenant,omitempty"`
	UID    string `json:"uid,omitempty"`
}

// jsonDocument fixes the order of a resource's top-level keys in JSON.
type jsonDocument struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   jsonMetadata   `json:"metadata"`
	Spec       map[string]any `json:"spec"`
	Status     map[string]any `json:"status,omitempty"`
}

func document(r *controlplanev1.Resource) doc {
	d := doc{
		apiVersion: r.GetApiVersion(),
		kind:       r.GetKind(),
		metadata:   jsonMetadata{Name: r.GetMetadata().GetName(), Tenant: r.GetMetadata().GetTenant(), UID: r.GetMetadata().GetUid()},
		spec:       r.GetSpec().AsMap(),
	}
	if st := r.GetStatus(); st != nil {
		d.status = map[string]any{"state": st.GetState(), "waiting": st.GetWaiting()}
		if st.GetLastError() != "" {
			d.status["lastError"] = st.GetLastError()
		}
		if st.GetSince() != nil {
			d.status["since"] = st.GetSince().AsTime().UTC().Format(time.RFC3339)
		}
		if st.GetFailures() != 0 {
			d.status["failures"] = int64(st.GetFailures())
		}
	}
	if d.apiVersion == "" {
		d.apiVersion = APIVersion
	}
	if d.kind == "Tenant" {
		d.metadata.Tenant = ""
	}
	return d
}

// yamlNode lays a document out in the order people write it: apiVersion,
// kind, metadata, spec.
func yamlNode(d doc) *yaml.Node {
	md := mappingNode()
	addPair(md, "name", stringNode(d.metadata.Name))
	if d.metadata.Tenant != "" {
		addPair(md, "tenant", stringNode(d.metadata.Tenant))
	}
	if d.metadata.UID != "" {
		addPair(md, "uid", stringNode(d.metadata.UID))
	}
	n := mappingNode()
	addPair(n, "apiVersion", stringNode(d.apiVersion))
	addPair(n, "kind", stringNode(d.kind))
	addPair(n, "metadata", md)
	addPair(n, "spec", valueNode(d.spec))
	if d.status != nil {
		addPair(n, "status", valueNode(d.status))
	}
	return n
}

func mappingNode() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }

func addPair(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, stringNode(key), v)
}

// stringNode is tagged !!str, so that the encoder quotes a string that would
// otherwise read back as something else ("2024-01-01", "true", "3", "").
// The YAML 1.1 booleans (yes, off...) are quoted too: this package reads
// them as strings, but other tools may not.
func stringNode(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	if yaml11Bools[s] {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

var yaml11Bools = map[string]bool{
	"y": true, "Y": true, "yes": true, "Yes": true, "YES": true, "n": true, "N": true, "no": true, "No": true, "NO": true,
	"on": true, "On": true, "ON": true, "off": true, "Off": true, "OFF": true,
}

// valueNode renders a JSON value with its mapping keys sorted. Integral
// numbers are written as integers (999999, not 999999.0 or 1e+06).
func valueNode(v any) *yaml.Node {
	switch v := v.(type) {
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	case string:
		return stringNode(v)
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)}
	case int64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v, 10)}
	case float64:
		return floatNode(v)
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(i, 10)}
		}
		f, _ := v.Float64()
		return floatNode(f)
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, item := range v {
			n.Content = append(n.Content, valueNode(item))
		}
		return n
	case map[string]any:
		n := mappingNode()
		if len(v) == 0 {
			n.Style = yaml.FlowStyle
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			addPair(n, k, valueNode(v[k]))
		}
		return n
	}
	// Anything else (typed maps and slices, other number types) is rendered
	// as the JSON it marshals to.
	b, err := json.Marshal(v)
	if err != nil {
		return stringNode(fmt.Sprint(v))
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return stringNode(string(b))
	}
	return valueNode(generic)
}

func floatNode(f float64) *yaml.Node {
	switch {
	case math.IsNaN(f):
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: ".nan"}
	case math.IsInf(f, 1):
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: ".inf"}
	case math.IsInf(f, -1):
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: "-.inf"}
	case f == math.Trunc(f) && math.Abs(f) <= maxExactInt:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(int64(f), 10)}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(f, 'g', -1, 64)}
}
