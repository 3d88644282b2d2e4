package resourcefile

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with one document of a resource file.
type Problem struct {
	// File is the path the document was read from.
	File string
	// Document is the document's 1-based number in File, counting empty
	// documents too, so that it matches the file's "---" separators.
	Document int
	// Resource is "Flow orders" when the document names its kind and name,
	// otherwise empty.
	Resource string
	// Path is where in the document the problem is, e.g.
	// "spec.mapping.fields.total"; empty for the document as a whole (and
	// for YAML syntax errors, whose Message gives the line).
	Path string
	// Message says what is wrong and, where it can, what to write instead.
	Message string
}

// String renders the problem on one line: file, document, resource, path
// and message.
func (p Problem) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, document %d", p.File, p.Document)
	if p.Resource != "" {
		fmt.Fprintf(&b, " (%s)", p.Resource)
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is every problem Load found, in file and document order; within a
// document the problems are sorted by path.
type Error struct {
	Problems []Problem
}

// Error renders one problem per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}
