package resourcefile

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// maxExactInt is the largest integer a float64, and so a structpb number,
// holds exactly.
const maxExactInt = 1 << 53

// maxExpanded bounds what one document (or one element of a JSON array of
// resources) may expand to, in values and characters: each value counts one,
// each key and string its length, and an alias counts what it stands for
// each time it is used. 1 MiB is four times what the control plane takes for
// one resource. yaml.v3 leaves aliases in the node tree unexpanded and so
// does not bound them ("billion laughs"); the converter expands them and
// counts as it goes, so a small file with nested aliases stops here instead
// of growing into gigabytes when it is sent.
const maxExpanded = 1 << 20

// maxDepth bounds how deep lists and mappings may nest, aliases expanded: a
// chain of anchors, each a list of the one before, nests as deep as the file
// is long, and every level's path is longer than the last.
const maxDepth = 512

// converter turns a YAML document into the JSON values the schema checks
// and structpb holds: map[string]any, []any, string, bool, nil, int64 and
// float64. It works on the node tree rather than decoding into any, so that
// keys are always strings, an integer stays an int64 (not a float), and a
// plain scalar YAML resolves as a timestamp (2024-01-01) stays the string
// that was written.
type converter struct {
	problems []located
	expanded int // values and characters so far, against maxExpanded
	// open are the lists and mappings being converted, outermost first:
	// one met again inside itself is an alias of its own anchor, a cycle.
	open []*yaml.Node
	// stop is set by the first problem that ends the conversion: a cycle,
	// the depth or the expansion limit.
	stop bool
}

// located is a problem found while converting, before the document's kind
// and name are known.
type located struct {
	path, message string
}

func (c *converter) fail(path string, n *yaml.Node, format string, args ...any) {
	c.problems = append(c.problems, located{path, fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)})
}

func (c *converter) value(path string, n *yaml.Node) any {
	if c.stop {
		return nil
	}
	c.expanded += 1 + len(n.Value)
	if c.expanded > maxExpanded {
		c.stop = true
		c.fail(path, n, "the document expands to more than %d values and characters (an alias counts what it stands for each time it is used), four times what the server takes for one resource: repeat less through aliases, or split the document", maxExpanded)
		return nil
	}
	if n.Kind == yaml.SequenceNode || n.Kind == yaml.MappingNode {
		if slices.Contains(c.open, n) {
			c.stop = true
			c.fail(path, n, "an alias is used inside its own anchor, which would repeat it forever: refer only to values outside it")
			return nil
		}
		if len(c.open) == maxDepth {
			c.stop = true
			c.fail(path, n, "lists and mappings nest more than %d levels deep, aliases expanded", maxDepth)
			return nil
		}
		c.open = append(c.open, n)
		defer func() { c.open = c.open[:len(c.open)-1] }()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return c.value(path, n.Content[0])
	case yaml.AliasNode:
		return c.value(path, n.Alias)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			out = append(out, c.value(indexPath(path, i), item))
		}
		return out
	case yaml.MappingNode:
		return c.mapping(path, n)
	case yaml.ScalarNode:
		return c.scalar(path, n)
	}
	c.fail(path, n, "unexpected YAML node")
	return nil
}

func (c *converter) mapping(path string, n *yaml.Node) map[string]any {
	out := make(map[string]any, len(n.Content)/2)
	lines := make(map[string]int, len(n.Content)/2)
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			c.fail(path, k, "a key must be a plain value, not a list or mapping")
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		c.expanded += len(k.Value)
		if line, ok := lines[k.Value]; ok {
			c.fail(keyPath(path, k.Value), k, "key %q is already defined on line %d", k.Value, line)
			continue
		}
		lines[k.Value] = k.Line
		out[k.Value] = c.value(keyPath(path, k.Value), v)
	}
	// Merge keys (<<: *base) fill in what the mapping does not set itself;
	// of several merged mappings, the first that sets a key wins.
	for _, m := range merges {
		if m.Kind == yaml.AliasNode {
			m = m.Alias
		}
		sources := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			sources = m.Content
		}
		for _, s := range sources {
			merged, ok := c.value(path, s).(map[string]any)
			if !ok {
				if !c.stop {
					c.fail(path, s, "a merge key (<<) takes a mapping or a list of mappings")
				}
				continue
			}
			for k, v := range merged {
				if _, set := out[k]; !set {
					out[k] = v
				}
			}
		}
	}
	return out
}

func (c *converter) scalar(path string, n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!str", "!!timestamp", "!!binary":
		return n.Value
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			c.fail(path, n, "%q is not a boolean", n.Value)
		}
		return b
	case "!!int":
		var i int64
		if err := n.Decode(&i); err != nil || i > maxExactInt || i < -maxExactInt {
			c.fail(path, n, "%s is too large to keep exactly (at most ±2^53); quote it to keep it as a string", n.Value)
			return nil
		}
		return i
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			c.fail(path, n, "%s is not a JSON number; quote it to keep it as a string", n.Value)
			return nil
		}
		return f
	}
	c.fail(path, n, "tag %s is not supported; write a plain value", n.Tag)
	return nil
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// keyPath appends a mapping key to a path: spec.mapping.fields, or
// spec.settings["a.b"] for a key that is not a plain identifier.
func keyPath(path, key string) string {
	if !identifier.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// indexPath appends a list index to a path: spec.mapping.validations[0].
func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}
