package resourcefile

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// diffContext is how many unchanged lines a hunk shows around a change.
const diffContext = 3

// Diff shows how a spec changes from old to new, as a unified diff of both
// rendered as YAML with sorted keys: lines prefixed "-" (removed), "+"
// (added) or " " (unchanged context, three lines around each change), in
// hunks headed "@@ -start,count +start,count @@".
//
// An old of nil means the spec is created: every line of new, prefixed "+",
// without a hunk header (there is nothing to locate it in); likewise a new of
// nil means deleted, every line "-". Equal specs give "". The output ends in
// a newline and depends only on the values, not on map order.
func Diff(old, new map[string]any) string {
	switch {
	case old == nil && new == nil:
		return ""
	case old == nil:
		return prefixLines("+", renderYAML(new))
	case new == nil:
		return prefixLines("-", renderYAML(old))
	}
	a, b := renderYAML(old), renderYAML(new)
	if slices.Equal(a, b) {
		return ""
	}
	return unified(editScript(a, b))
}

// renderYAML renders a value as YAML lines, keys sorted.
func renderYAML(v map[string]any) []string {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(valueNode(v)); err != nil {
		// The nodes are built from JSON values and always encode; show the
		// failure rather than hide the change.
		return []string{fmt.Sprintf("(cannot render: %v)", err)}
	}
	_ = enc.Close()
	return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
}

func prefixLines(prefix string, lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(prefix)
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// edit is one line of an edit script: kind ' ' keeps line, '-' removes it
// from a, '+' adds it from b.
type edit struct {
	kind byte
	line string
}

// editScript is a shortest edit script from a to b (Myers, "An O(ND)
// Difference Algorithm and Its Variations", 1986), with the removals of each
// changed block before its additions.
func editScript(a, b []string) []edit {
	n, m := len(a), len(b)
	maxD := n + m
	offset := maxD + 1
	v := make([]int, 2*maxD+3)
	var trace [][]int
	for d := 0; d <= maxD; d++ {
		trace = append(trace, append([]int(nil), v...))
		done := false
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[offset+k-1] < v[offset+k+1]) {
				x = v[offset+k+1] // down: an addition
			} else {
				x = v[offset+k-1] + 1 // right: a removal
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x++
				y++
			}
			v[offset+k] = x
			if x >= n && y >= m {
				done = true
				break
			}
		}
		if done {
			break
		}
	}

	// Walk back from (n, m) through the saved frontiers: trace[d] is the
	// frontier before step d, which says where step d came from.
	var rev []edit
	x, y := n, m
	for d := len(trace) - 1; d >= 0; d-- {
		prev := trace[d]
		k := x - y
		var prevK int
		if k == -d || (k != d && prev[offset+k-1] < prev[offset+k+1]) {
			prevK = k + 1
		} else {
			prevK = k - 1
		}
		prevX := prev[offset+prevK]
		prevY := prevX - prevK
		if d == 0 {
			prevX, prevY = 0, 0
		}
		for x > prevX && y > prevY {
			x--
			y--
			rev = append(rev, edit{' ', a[x]})
		}
		if d > 0 {
			if x == prevX {
				y--
				rev = append(rev, edit{'+', b[y]})
			} else {
				x--
				rev = append(rev, edit{'-', a[x]})
			}
		}
	}
	out := make([]edit, 0, len(rev))
	for i := len(rev) - 1; i >= 0; i-- {
		out = append(out, rev[i])
	}
	return groupChanges(out)
}

// groupChanges puts the removals of each run of changes before its
// additions, the way diff and git show a replaced block.
func groupChanges(es []edit) []edit {
	out := make([]edit, 0, len(es))
	for i := 0; i < len(es); {
		if es[i].kind == ' ' {
			out = append(out, es[i])
			i++
			continue
		}
		j := i
		for j < len(es) && es[j].kind != ' ' {
			j++
		}
		for _, e := range es[i:j] {
			if e.kind == '-' {
				out = append(out, e)
			}
		}
		for _, e := range es[i:j] {
			if e.kind == '+' {
				out = append(out, e)
			}
		}
		i = j
	}
	return out
}

// unified renders an edit script as hunks with diffContext lines of context.
func unified(es []edit) string {
	var b strings.Builder
	for i := 0; i < len(es); {
		if es[i].kind == ' ' {
			i++
			continue
		}
		// A hunk starts diffContext lines before this change and runs
		// until a stretch of more than 2*diffContext unchanged lines.
		start := max(0, i-diffContext)
		end := i
		for end < len(es) {
			if es[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(es) && es[run].kind == ' ' {
				run++
			}
			if run == len(es) || run-end > 2*diffContext {
				end = min(end+diffContext, len(es))
				break
			}
			end = run
		}
		writeHunk(&b, es, start, end)
		i = end
	}
	return b.String()
}

func writeHunk(b *strings.Builder, es []edit, start, end int) {
	oldStart, newStart := 1, 1
	for _, e := range es[:start] {
		if e.kind != '+' {
			oldStart++
		}
		if e.kind != '-' {
			newStart++
		}
	}
	oldCount, newCount := 0, 0
	for _, e := range es[start:end] {
		if e.kind != '+' {
			oldCount++
		}
		if e.kind != '-' {
			newCount++
		}
	}
	fmt.Fprintf(b, "@@ -%s +%s @@\n", hunkRange(oldStart, oldCount), hunkRange(newStart, newCount))
	for _, e := range es[start:end] {
		b.WriteByte(e.kind)
		b.WriteString(e.line)
		b.WriteByte('\n')
	}
}

// hunkRange writes a range as diff -u does: the count is left out when it
// is 1, and an empty range names the line before it.
func hunkRange(start, count int) string {
	switch count {
	case 0:
		return fmt.Sprintf("%d,0", start-1)
	case 1:
		return fmt.Sprintf("%d", start)
	}
	return fmt.Sprintf("%d,%d", start, count)
}
