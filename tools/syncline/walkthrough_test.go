package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReadmeWalkthrough runs the README's "Five minutes" section as a
// newcomer would: `syncline dev` from its first block (on random ports),
// then every line of its second block in order, in a fresh folder that has
// the repository's examples/, each checked for what the README promises.
// Then it sends the README's ingest curl to the same instance. The commands
// are read from README.md, so the README cannot drift from what works.
//
// `syncline` lines run the CLI in-process (the same code the built binary
// runs), `sqlite3` lines run their query through Go's SQLite driver (the
// sqlite3 program need not be installed), and the curl is sent as the
// request its flags describe.
func TestReadmeWalkthrough(t *testing.T) {
	clearClientEnv(t)
	readme, err := os.ReadFile(filepath.Join(repoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := shellBlocks(section(t, string(readme), "## Five minutes"))
	if len(blocks) != 2 {
		t.Fatalf("the Five minutes section has %d sh blocks; the test runs two: syncline dev, then the commands", len(blocks))
	}

	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.Symlink(filepath.Join(repoRoot(), "examples"), "examples"); err != nil {
		t.Fatal(err)
	}
	start := commands(blocks[0])
	if len(start) != 1 || strings.Join(start[0][:min(4, len(start[0]))], " ") != "go run ./tools/syncline dev" {
		t.Fatalf("the first block is %q; the test expects `go run ./tools/syncline dev`", blocks[0])
	}
	startDev(t, ".syncline", start[0][4:]...)

	w := walkthrough{t: t}
	for _, words := range commands(blocks[1]) {
		w.run(words)
	}
	if w.ranSQLite == "" || w.published == nil {
		t.Fatal("the walkthrough does not publish the order, or does not look at the ERP's table")
	}

	// What the paragraph after the block promises: the same file again is
	// unchanged, an older --version is stale.
	w.must(w.published)
	logs := []string{"logs", "--tenant", "acme", "--remote-id", "1001", "--action", "skipped", "-o", "json"}
	w.eventually(logs, func(out string) bool { return strings.Contains(out, `"code": "unchanged"`) })
	w.must(append(w.published, "--version", "1"))
	w.eventually(logs, func(out string) bool { return strings.Contains(out, `"code": "stale_version"`) })

	curl := curlCommand(t, string(readme))
	w.curl(curl)
}

// walkthrough runs the README's commands and checks their outcomes.
type walkthrough struct {
	t *testing.T
	// ranSQLite is the target database the README's sqlite3 line reads.
	ranSQLite string
	// published is the README's publish command, without "syncline".
	published []string
}

func (w *walkthrough) run(words []string) {
	t := w.t
	t.Helper()
	line := strings.Join(words, " ")
	switch words[0] {
	case "go":
		// Building the CLI onto the PATH: the in-process CLI stands in for
		// the binary it builds.
		if !strings.HasPrefix(line, "go build -o bin/ ./tools/syncline") {
			t.Fatalf("README command %q: the test knows only `go build -o bin/ ./tools/syncline`", line)
		}
	case "syncline":
		w.syncline(words[1:])
	case "sqlite3":
		w.sqlite3(words[1:])
	default:
		t.Fatalf("README command %q: the test does not know how to run %s", line, words[0])
	}
}

func (w *walkthrough) syncline(args []string) {
	t := w.t
	t.Helper()
	line := "syncline " + strings.Join(args, " ")
	switch args[0] {
	case "apply":
		out := w.must(args)
		for _, want := range []string{"tenant acme created", "integrator acme/shop-to-erp created", "flow acme/orders created", "token: sli_"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s printed\n%s\nwithout %q", line, out, want)
			}
		}
	case "get":
		if out := w.must(args); !strings.Contains(out, "orders") {
			t.Errorf("%s printed\n%s\nwithout the flow orders", line, out)
		}
	case "publish":
		if out := w.must(args); !strings.HasPrefix(out, "published event ") {
			t.Errorf("%s printed %q", line, out)
		}
		w.published = args
	case "logs":
		if hasFlag(args, "-o", "json") {
			var page struct {
				Records []struct{ RemoteID, Action, Status, TraceID string }
			}
			out := w.must(args)
			if err := json.Unmarshal([]byte(out), &page); err != nil {
				t.Fatalf("%s printed no JSON (%v):\n%s", line, err, out)
			}
			if len(page.Records) != 1 || page.Records[0].RemoteID != "1001" || page.Records[0].Action != "created" ||
				page.Records[0].Status != "success" || !traceID.MatchString(page.Records[0].TraceID) {
				t.Errorf("%s printed\n%s\nwant the order 1001 created, success, with a trace id", line, out)
			}
			return
		}
		// The log is written a moment after the target has the order.
		out := w.eventually(args, func(out string) bool { return strings.Contains(out, "created") })
		if !strings.Contains(out, "1001") || !strings.Contains(out, "success") || !traceID.MatchString(out) {
			t.Errorf("%s printed\n%s\nwant the order 1001 created, success, with a trace id", line, out)
		}
	default:
		t.Fatalf("README command %q: the test has no check for syncline %s", line, args[0])
	}
}

var traceID = regexp.MustCompile(`\b[0-9a-f]{32}\b`)

// sqlite3 runs `sqlite3 [-options] FILE 'QUERY'` and checks that the
// example order is a row of its answer.
func (w *walkthrough) sqlite3(args []string) {
	t := w.t
	t.Helper()
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		args = args[1:]
	}
	if len(args) != 2 {
		t.Fatalf("README command sqlite3: want a database file and a query, got %q", args)
	}
	w.ranSQLite = args[0]
	rows := w.targetRows(args[0], args[1], "SO-1001")
	row := rows["SO-1001"]
	for col, want := range map[string]string{"customer_email": "ada@example.com", "currency": "EUR", "status": "paid", "external_ref": "1001", "employee_number": "999999"} {
		if row[col] != want {
			t.Errorf("sqlite3 %s %q: order SO-1001 has %s = %q, want %q (row %v)", args[0], args[1], col, row[col], want, row)
		}
	}
}

// targetRows polls the target database path with query until it returns
// the order number, and returns the rows by order_number, each column as
// text.
func (w *walkthrough) targetRows(path, query, number string) map[string]map[string]string {
	t := w.t
	t.Helper()
	var rows map[string]map[string]string
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; {
		// A query before the connector has created the file would create an
		// empty one: wait for the file first.
		if _, statErr := os.Stat(path); statErr == nil {
			rows, err = queryRows(path, query)
			if rows[number] != nil {
				return rows
			}
		} else {
			err = statErr
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s never reached %s (%q): %v; rows %v", number, path, query, err, rows)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// queryRows runs query on the SQLite file with the "sqlite" driver that the
// all-in-one mode's stores register.
func queryRows(path, query string) (map[string]map[string]string, error) {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rs, err := db.Query(query)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		return nil, err
	}
	byNumber := map[string]map[string]string{}
	for rs.Next() {
		values := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range values {
			ptrs[i] = &values[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := map[string]string{}
		for i, c := range cols {
			row[c] = text(values[i])
		}
		byNumber[row["order_number"]] = row
	}
	return byNumber, rs.Err()
}

func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case []byte:
		return string(v)
	default:
		return fmt.Sprint(v)
	}
}

// curl sends the README's curl as the HTTP request its flags describe, to
// the instance instead of the default address, and checks that the change
// it carries reaches the target and the API log.
func (w *walkthrough) curl(args []string) {
	t := w.t
	t.Helper()
	var body, target string
	header := http.Header{}
	for i := 1; i < len(args); i++ {
		switch args[i] {
		case "-H":
			i++
			name, value, _ := strings.Cut(args[i], ":")
			header.Add(name, strings.TrimSpace(value))
		case "-d":
			i++
			body = args[i]
		default:
			if strings.HasPrefix(args[i], "-") {
				t.Fatalf("the README's curl has %s, which the test does not know", args[i])
			}
			target = args[i]
		}
	}
	const readmeAPI = "http://127.0.0.1:7400/"
	if !strings.HasPrefix(target, readmeAPI) {
		t.Fatalf("the README's curl goes to %q, not to the dev mode's default address %s", target, readmeAPI)
	}
	dev, _, err := readAddresses(".syncline")
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, dev.API+"/"+strings.TrimPrefix(target, readmeAPI), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(answer, []byte(`"eventIds"`)) {
		t.Fatalf("the README's curl: %s %s", resp.Status, answer)
	}

	var sent struct {
		Changes []struct{ Key, Record string }
	}
	if err := json.Unmarshal([]byte(body), &sent); err != nil || len(sent.Changes) != 1 {
		t.Fatalf("the README's curl sends %s (%v); the test expects one change", body, err)
	}
	var record struct{ Number string }
	if err := json.Unmarshal([]byte(sent.Changes[0].Record), &record); err != nil {
		t.Fatalf("the README's curl's record %s: %v", sent.Changes[0].Record, err)
	}
	w.targetRows(w.ranSQLite, "select * from orders", record.Number)
	args = []string{"logs", "--tenant", "acme", "--remote-id", sent.Changes[0].Key}
	w.eventually(args, func(out string) bool { return strings.Contains(out, "created") && strings.Contains(out, "success") })
}

// must runs syncline with args and returns what it printed.
func (w *walkthrough) must(args []string) string {
	w.t.Helper()
	out, err := run(w.t, args...)
	if err != nil {
		w.t.Fatalf("syncline %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// eventually runs syncline with args until its output satisfies ok.
func (w *walkthrough) eventually(args []string, ok func(string) bool) string {
	w.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, err := run(w.t, args...)
		if err == nil && ok(out) {
			return out
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("syncline %s never printed what the README promises: %v\n%s", strings.Join(args, " "), err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasFlag(args []string, name, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == name && args[i+1] == value {
			return true
		}
	}
	return false
}

// section returns the README's text from the heading to the next heading of
// the same level.
func section(t *testing.T, readme, heading string) string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q section", heading)
	}
	level := heading[:strings.Index(heading, " ")+1]
	if end := strings.Index(rest, "\n"+level); end >= 0 {
		rest = rest[:end]
	}
	return rest
}

// shellBlocks returns the contents of the ```sh blocks of text.
func shellBlocks(text string) []string {
	var blocks []string
	for {
		_, rest, ok := strings.Cut(text, "```sh\n")
		if !ok {
			return blocks
		}
		block, after, _ := strings.Cut(rest, "```")
		blocks = append(blocks, block)
		text = after
	}
}

// curlCommand returns the words of the README's one curl command in a sh
// block of its "Publishing change events" section.
func curlCommand(t *testing.T, readme string) []string {
	t.Helper()
	var found [][]string
	for _, b := range shellBlocks(section(t, readme, "## Publishing change events")) {
		for _, c := range commands(b) {
			if c[0] == "curl" {
				found = append(found, c)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("the Publishing change events section has %d curl commands; the test runs one", len(found))
	}
	return found[0]
}

// commands splits a sh block into commands, each as its words: lines
// ending in a backslash continue on the next, and blank lines and
// comments are left out.
func commands(block string) [][]string {
	var cmds [][]string
	var line string
	for _, l := range strings.Split(block, "\n") {
		if strings.HasSuffix(l, "\\") {
			line += strings.TrimSuffix(l, "\\")
			continue
		}
		if words := shellWords(line + l); len(words) > 0 {
			cmds = append(cmds, words)
		}
		line = ""
	}
	return cmds
}

// shellWords splits one command line as sh does, for what the README
// writes: words between blanks, '…' taken as it is, "…" with backslash
// escapes and $(cat FILE) replaced by the file's content without its final
// newlines, and a comment from a # that starts a word. Any other $ is left
// as it is; the lines that hold one are not run.
func shellWords(line string) []string {
	var words []string
	var word strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			return words
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				end = len(line) - i - 1
			}
			word.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			inWord = true
			for i++; i < len(line) && line[i] != '"'; i++ {
				switch {
				case line[i] == '\\' && i+1 < len(line) && strings.IndexByte(`"\$`, line[i+1]) >= 0:
					i++
					word.WriteByte(line[i])
				case strings.HasPrefix(line[i:], "$(cat "):
					end := strings.IndexByte(line[i:], ')')
					b, _ := os.ReadFile(strings.TrimSpace(line[i+len("$(cat ") : i+end]))
					word.WriteString(strings.TrimRight(string(b), "\n"))
					i += end
				default:
					word.WriteByte(line[i])
				}
			}
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words
}

// TestReadmeSaysWhatVersionDefaultsTo: the walkthrough asks for a higher
// --version only after it has said what the default is.
func TestReadmeSaysWhatVersionDefaultsTo(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(section(t, string(readme), "## Five minutes")), " ")
	said := strings.Index(text, "milliseconds since the epoch")
	asked := strings.Index(text, "higher `--version`")
	if said < 0 || asked < 0 || said > asked {
		t.Errorf("the Five minutes section asks for a higher --version (at %d) without first saying that it defaults to the time of publishing in milliseconds since the epoch (at %d)", asked, said)
	}
}
