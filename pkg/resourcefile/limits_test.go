package resourcefile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLoadRefusesWhatIsNotARegularFile: `syncline apply -f /dev/zero` once read until the
// kernel stopped it.
func TestLoadRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	inner := filepath.Join(t.TempDir(), "folder")
	if err := os.Mkdir(inner, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(inner, "linked.yaml")); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, path, want string }{
		{"a link to a folder in a folder", inner, "reading " + filepath.Join(inner, "linked.yaml") + ": it is a folder (inside a folder only its files are read), not a regular file"},
		{"a character device", "/dev/zero", "reading /dev/zero: it is a character device, not a regular file"},
		{"a named pipe", fifo, "reading " + fifo + ": it is a named pipe, not a regular file"},
		// A folder's .yaml entries are files to read too: the pipe is refused, not opened
		// (which would wait for a writer).
		{"a named pipe in a folder", dir, "reading " + fifo + ": it is a named pipe, not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.path)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Load(%s) = %v, want an error starting %q", tt.path, err, tt.want)
			}
		})
	}
}

func TestLoadRefusesFilesOverTheSizeLimit(t *testing.T) {
	dir := t.TempDir()
	// A valid file, padded with a comment past the limit.
	content := "apiVersion: syncline.dev/v1\nkind: Tenant\nmetadata: {name: acme}\n# " + strings.Repeat("x", MaxFileSize) + "\n"
	path := writeFile(t, dir, "big.yaml", content)
	want := fmt.Sprintf("reading %s: it is %d bytes, above the limit of 4194304 (4 MiB) for a resource file", path, len(content))
	for _, p := range []string{path, dir} {
		if _, err := Load(p); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Load(%s) = %v, want an error starting %q", p, err, want)
		}
	}
	fits := writeFile(t, t.TempDir(), "fits.yaml", content[:MaxFileSize-1]+"\n")
	if _, err := Load(fits); err != nil {
		t.Errorf("Load of a file of %d bytes: %v", MaxFileSize, err)
	}
}

// TestLoadRefusesAliasBombs: a small file whose aliases expand into gigabytes, or forever,
// is refused with the document and the path where it passed a limit.
func TestLoadRefusesAliasBombs(t *testing.T) {
	laughs := "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
	prev := "a"
	for _, level := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		laughs += fmt.Sprintf("%s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n", level, level, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = level
	}
	long := "a: &a \"" + strings.Repeat("x", 100_000) + "\"\nb: [" + strings.Repeat("*a,", 4_999) + "*a]\n"
	chain := "a0: &a0 [x]\n"
	for i := 1; i < 600; i++ {
		chain += fmt.Sprintf("a%d: &a%d [*a%d]\n", i, i, i-1)
	}
	tests := []struct{ name, settings, message string }{
		{"billion laughs", laughs, "the document expands to more than 1048576 values and characters (an alias counts what it stands for each time it is used)"},
		{"a long string repeated", long, "the document expands to more than 1048576 values and characters (an alias counts what it stands for each time it is used)"},
		{"an alias inside its anchor", "a: &a [x, *a]\n", "an alias is used inside its own anchor, which would repeat it forever"},
		{"a merge inside its anchor", "a: &a {x: 1, <<: *a}\n", "an alias is used inside its own anchor, which would repeat it forever"},
		{"a chain of anchors", chain, "lists and mappings nest more than 512 levels deep, aliases expanded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := "apiVersion: syncline.dev/v1\nkind: Endpoint\nmetadata: {tenant: acme, name: erp}\nspec:\n  type: sql\n  description: ERP\n  settings:\n" +
				indent(tt.settings)
			path := writeFile(t, t.TempDir(), "bomb.yaml", content)
			_, err := Load(path)
			var perr *Error
			if !errors.As(err, &perr) || len(perr.Problems) != 1 {
				t.Fatalf("Load = %v, want one problem", err)
			}
			p := perr.Problems[0]
			if p.Document != 1 || !strings.HasPrefix(p.Path, "spec.settings.") || !strings.Contains(p.Message, tt.message) {
				t.Errorf("problem = %+v", p)
			}
		})
	}
}

// indent puts YAML lines under a key two levels deep.
func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n    ") + "\n"
}

// TestLoadChecksTheServersLimits: the schema mirrors the control plane's
// limits where JSON Schema can say them, so a file is refused before it is
// sent.
func TestLoadChecksTheServersLimits(t *testing.T) {
	endpoint := "apiVersion: syncline.dev/v1\nkind: Endpoint\nmetadata: {tenant: acme, name: shop}\nspec:\n  type: nats\n  description: " +
		strings.Repeat("d", 1_001) + "\n"
	expr := strings.Replace(flow, "double(source.total)", strings.Repeat("a", 4_097), 1)
	tests := []struct{ name, content, path, message string }{
		{"a long description", endpoint, "spec.description", "is 1,001 characters long, above the limit of 1,000"},
		{"a long expression", expr, "spec.mapping.fields.total", "is 4,097 characters long, above the limit of 4,096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeFile(t, t.TempDir(), "limits.yaml", tt.content))
			var perr *Error
			if !errors.As(err, &perr) || len(perr.Problems) != 1 {
				t.Fatalf("Load = %v, want one problem", err)
			}
			if p := perr.Problems[0]; p.Path != tt.path || p.Message != tt.message {
				t.Errorf("problem = %s: %s, want %s: %s", p.Path, p.Message, tt.path, tt.message)
			}
		})
	}
}
