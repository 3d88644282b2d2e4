package resourcefile

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"google.golang.org/protobuf/proto"
)

// FuzzParse feeds arbitrary file contents to the loader. Whatever a file
// holds, Parse returns (never panics) either resources or an *Error whose
// problems name the file and a document; and what it returns, Encode writes
// back to a file that parses to the same resources. The seed corpus is in
// testdata/fuzz/FuzzParse, with the example and the shapes that once broke
// the loader: an alias bomb, merge keys, a JSON array.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(examplePath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Parse("fuzz.yaml", data)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) || len(perr.Problems) == 0 || rs != nil {
				t.Fatalf("Parse = %d resources, %v (%T), want an *Error with problems", len(rs), err, err)
			}
			for _, p := range perr.Problems {
				if p.File != "fuzz.yaml" || p.Document < 1 || p.Message == "" {
					t.Fatalf("problem %+v does not name the file, the document and what is wrong", p)
				}
			}
			return
		}
		var buf bytes.Buffer
		if err := Encode(&buf, "yaml", rs); err != nil {
			t.Fatalf("encoding what Parse returned: %v", err)
		}
		again, err := Parse("again.yaml", buf.Bytes())
		if err != nil {
			t.Fatalf("parsing what Encode wrote: %v\n%s", err, buf.String())
		}
		if len(again) != len(rs) {
			t.Fatalf("parsed %d resources from what Encode wrote, want %d", len(again), len(rs))
		}
		for i := range rs {
			if !proto.Equal(rs[i], again[i]) {
				t.Fatalf("resource %d changed in the round trip:\nbefore %v\nafter  %v", i+1, rs[i], again[i])
			}
		}
	})
}
