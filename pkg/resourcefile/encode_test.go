package resourcefile

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
)

// tricky is an endpoint whose settings hold values that YAML would read as
// something else if they were written plainly.
func tricky(t *testing.T) *controlplanev1.Resource {
	t.Helper()
	spec, err := structpb.NewStruct(map[string]any{
		"type":        "rest",
		"description": "Line one\nline two\n",
		"settings": map[string]any{
			"date": "2024-01-01", "bool": "true", "number": "3", "empty": "", "null": "null", "yes": "yes",
			"colon": "a: b", "hash": "# not a comment", "lead": " padded ", "int": 999999, "million": 1000000,
			"float": 2.5, "small": 1e-7, "list": []any{1, "two", nil, false}, "nested": map[string]any{}, "dotted.key": "x",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &controlplanev1.Resource{
		ApiVersion: APIVersion, Kind: "Endpoint",
		Metadata: &controlplanev1.Metadata{Tenant: "acme", Name: "odd", Uid: "0190a4b2-7c1e-7d3a-9f00-1234567890ab"},
		Spec:     spec,
	}
}

func TestEncodeLoadRoundTrip(t *testing.T) {
	rs, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	rs = append(rs, tricky(t))
	var buf bytes.Buffer
	if err := Encode(&buf, "yaml", rs); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, t.TempDir(), "out.yaml", buf.String())
	again, err := Load(path)
	if err != nil {
		t.Fatalf("loading the encoded resources: %v\n%s", err, buf.String())
	}
	if len(again) != len(rs) {
		t.Fatalf("loaded %d resources, encoded %d", len(again), len(rs))
	}
	for i := range rs {
		if !proto.Equal(rs[i], again[i]) {
			t.Errorf("resource %d changed in the round trip:\nbefore %v\nafter  %v", i+1, rs[i], again[i])
		}
	}
}

func TestEncodeGolden(t *testing.T) {
	rs, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	rs = append(rs, tricky(t))
	for _, format := range []string{"yaml", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Encode(&buf, format, rs); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join("testdata", "encode", "resources."+format), buf.String())
		})
	}
}

func TestEncodeJSONHasTheFileShape(t *testing.T) {
	rs, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	rs[0].Generation = 7 // not part of a file
	var buf bytes.Buffer
	if err := Encode(&buf, "json", rs); err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 5 {
		t.Fatalf("%d documents, want 5", len(docs))
	}
	for i, d := range docs {
		// Each element, written as YAML, is a document Load accepts.
		if problems := validate(d); len(problems) > 0 {
			t.Errorf("element %d does not fit the schema: %v", i, problems)
		}
	}
	if _, ok := docs[0]["generation"]; ok {
		t.Error("the JSON carries the generation")
	}
	if md := docs[0]["metadata"].(map[string]any); md["tenant"] != nil {
		t.Errorf("the Tenant's metadata = %v, want no tenant", md)
	}
	defaults := docs[4]["spec"].(map[string]any)["mapping"].(map[string]any)["defaults"]
	if !strings.Contains(buf.String(), `"employee_number": 999999`) {
		t.Errorf("defaults = %v; the JSON should write 999999 as an integer", defaults)
	}
}

func TestEncodeEmptyAndUnknownFormat(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, "json", nil); err != nil || buf.String() != "[]\n" {
		t.Errorf("Encode(json, nil) = %q, %v; want []", buf.String(), err)
	}
	buf.Reset()
	if err := Encode(&buf, "yaml", nil); err != nil || buf.Len() != 0 {
		t.Errorf("Encode(yaml, nil) = %q, %v; want nothing", buf.String(), err)
	}
	if err := Encode(&buf, "toml", nil); err == nil || !strings.Contains(err.Error(), "use yaml or json") {
		t.Errorf("Encode(toml) = %v, want an error naming the formats", err)
	}
}

// TestEncodeShowsAFlowsStatus: a flow's status is written after its spec,
// and the file applies again as it was: Load reads the resource without it.
func TestEncodeShowsAFlowsStatus(t *testing.T) {
	rs, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var flow *controlplanev1.Resource
	for _, r := range rs {
		if r.Kind == "Flow" {
			flow = proto.Clone(r).(*controlplanev1.Resource)
		}
	}
	flow.Status = &controlplanev1.FlowStatus{State: "paused", Waiting: 12, LastError: "dial tcp 10.0.0.5:5432: connection refused",
		Since: timestamppb.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)), Failures: 4}
	var buf bytes.Buffer
	if err := Encode(&buf, "yaml", []*controlplanev1.Resource{flow}); err != nil {
		t.Fatal(err)
	}
	want := "status:\n  failures: 4\n  lastError: 'dial tcp 10.0.0.5:5432: connection refused'\n  since: \"2026-12-01T10:00:00Z\"\n  state: paused\n  waiting: 12\n"
	if !strings.HasSuffix(buf.String(), want) {
		t.Errorf("encoded flow ends\n%s\nwant it to end with\n%s", buf.String(), want)
	}
	again, err := Load(writeFile(t, t.TempDir(), "flow.yaml", buf.String()))
	if err != nil {
		t.Fatalf("loading a flow with its status: %v", err)
	}
	flow.Status = nil
	if len(again) != 1 || !proto.Equal(again[0], flow) {
		t.Errorf("loaded %v, want the flow without its status", again)
	}
	buf.Reset()
	if err := Encode(&buf, "json", []*controlplanev1.Resource{flow}); err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &docs); err != nil {
		t.Fatal(err)
	}
	if _, ok := docs[0]["status"]; ok {
		t.Errorf("a flow without a status is written with one:\n%s", buf.String())
	}
}
