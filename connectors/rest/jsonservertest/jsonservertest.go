// Package jsonservertest runs json-server 0.17.4, the tests' stand-in for a webshop's or PIM's
// HTTP API, for the tests of the rest target. A test package starts one server in its
// TestMain (Start, Stop) and each test resets it to the collections, credentials and rules it
// needs (Reset), so tests run one after the other against a known state.
//
// json-server is installed by `make peers` into tools/peers/node_modules; Start fails saying so
// when it is not there.
package jsonservertest

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

//go:embed server.js
var serverJS []byte

// Server is a running json-server.
type Server struct {
	// URL is the server's base URL, http://127.0.0.1:PORT.
	URL string

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lockedBuffer
	done   chan error
	dir    string
}

// Auth is what the server asks every request for; the zero value asks nothing.
type Auth struct {
	Bearer string `json:"bearer,omitempty"`
	User   string `json:"user,omitempty"`
	// Password goes with User (basic auth).
	Password string `json:"password,omitempty"`
	// Header and Key: an API key in a header of that name.
	Header string `json:"header,omitempty"`
	Key    string `json:"key,omitempty"`
}

// Rule refuses a create or update whose body has the field with a value that does not match
// Pattern (a JavaScript regular expression), answering Status (422 when 0) with
// {"message": Message}.
type Rule struct {
	Pattern string `json:"pattern"`
	Message string `json:"message"`
	Status  int    `json:"status,omitempty"`
}

// Trouble makes the server answer the next Count requests (of Method and to Path, when set)
// with Status (and Retry-After, when set), as an API that is busy or down for a moment would.
type Trouble struct {
	Status     int    `json:"status"`
	Count      int    `json:"count"`
	RetryAfter string `json:"retry_after,omitempty"`
	Method     string `json:"method,omitempty"`
	Path       string `json:"path,omitempty"`
}

// State is what Reset puts in the server.
type State struct {
	// DB holds the collections by name; a collection that is not named here does not exist
	// (json-server answers 404), so name every one a test uses, with nil for an empty one.
	DB      map[string][]map[string]any
	Auth    Auth
	Rules   map[string]map[string]Rule // collection -> field -> rule
	Trouble Trouble
	// Slow takes every request of a method and path ("POST /customers") up that many
	// milliseconds late: a record being created is not there yet for a lookup meanwhile.
	Slow map[string]int
}

// Start starts json-server on 127.0.0.1 at a port the system picks and waits until it
// listens. The caller stops it with Stop.
func Start() (*Server, error) {
	modules, err := nodeModules()
	if err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("starting json-server: node is not installed; run make peers")
	}
	dir, err := os.MkdirTemp("", "jsonservertest-")
	if err != nil {
		return nil, fmt.Errorf("starting json-server: %w", err)
	}
	script := filepath.Join(dir, "server.js")
	if err := os.WriteFile(script, serverJS, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting json-server: %w", err)
	}
	s := &Server{stderr: &lockedBuffer{}, done: make(chan error, 1), dir: dir}
	s.cmd = exec.Command(node, script)
	s.cmd.Dir = dir
	s.cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	s.cmd.Stderr = s.stderr
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting json-server: %w", err)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting json-server: %w", err)
	}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting json-server: %w", err)
	}
	go func() { s.done <- s.cmd.Wait() }()

	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(line, "listening on ")
		if !ok {
			s.Stop()
			return nil, fmt.Errorf("starting json-server: it said %q instead of where it listens", line)
		}
		s.URL = "http://" + addr
	case err := <-s.done:
		s.done <- err
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting json-server: it exited (%v): %s", err, s.stderr)
	case <-time.After(time.Minute):
		s.Stop()
		return nil, fmt.Errorf("starting json-server: it did not listen within a minute: %s", s.stderr)
	}
	return s, nil
}

// nodeModules finds tools/peers/node_modules with json-server in it, from the working
// directory up (a test runs in its package's folder).
func nodeModules() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding json-server: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "tools", "peers", "package.json")); err == nil {
			modules := filepath.Join(dir, "tools", "peers", "node_modules")
			if _, err := os.Stat(filepath.Join(modules, "json-server", "package.json")); err != nil {
				return "", fmt.Errorf("json-server is not installed in %s: run make peers", modules)
			}
			return modules, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("finding json-server: no tools/peers folder above the working directory; run the tests from the repository")
		}
		dir = parent
	}
}

// Stop stops the server and removes its files.
func (s *Server) Stop() {
	s.stdin.Close()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	os.RemoveAll(s.dir)
}

// Reset replaces everything in the server with state.
func (s *Server) Reset(t testing.TB, state State) {
	t.Helper()
	db := map[string][]map[string]any{}
	for name, items := range state.DB {
		if items == nil {
			items = []map[string]any{}
		}
		db[name] = items
	}
	body, err := json.Marshal(map[string]any{"db": db, "auth": state.Auth, "rules": state.Rules, "trouble": state.Trouble, "slow": state.Slow})
	if err != nil {
		t.Fatalf("resetting json-server: %v", err)
	}
	status, answer := s.do(t, http.MethodPost, "/__peer/reset", body, nil)
	if status != http.StatusOK {
		t.Fatalf("resetting json-server: %d %s", status, answer)
	}
}

// Items returns the items of collection whose fields equal query's values (json-server's own
// filter, which ignores a field no item has), read over its API with auth.
func (s *Server) Items(t testing.TB, auth Auth, collection string, query url.Values) []map[string]any {
	t.Helper()
	items, err := s.List(context.Background(), auth, collection, query)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// List is Items for callers without a test at hand.
func (s *Server) List(ctx context.Context, auth Auth, collection string, query url.Values) ([]map[string]any, error) {
	path := "/" + collection
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	status, body, err := s.send(ctx, http.MethodGet, path, nil, &auth)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET %s on json-server: %d %s", path, status, body)
	}
	var items []map[string]any
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, fmt.Errorf("GET %s on json-server: %v in %s", path, err, body)
	}
	return items, nil
}

// Add creates an item in collection over the API, as someone editing the shop by hand would,
// and returns it as stored (with its id).
func (s *Server) Add(t testing.TB, auth Auth, collection string, item map[string]any) map[string]any {
	t.Helper()
	body, err := json.Marshal(item)
	if err != nil {
		t.Fatal(err)
	}
	status, answer := s.do(t, http.MethodPost, "/"+collection, body, &auth)
	if status != http.StatusCreated {
		t.Fatalf("POST /%s: %d %s", collection, status, answer)
	}
	var stored map[string]any
	if err := json.Unmarshal(answer, &stored); err != nil {
		t.Fatalf("POST /%s: %v in %s", collection, err, answer)
	}
	return stored
}

// Put makes the item of collection with the id item["id"] hold item, over the API: it
// replaces the item (PUT) when there is one and creates it (POST) when not, as a shop's own
// edits would.
func (s *Server) Put(t testing.TB, auth Auth, collection string, item map[string]any) {
	t.Helper()
	body, err := json.Marshal(item)
	if err != nil {
		t.Fatal(err)
	}
	path := "/" + collection + "/" + url.PathEscape(fmt.Sprint(item["id"]))
	status, answer := s.do(t, http.MethodPut, path, body, &auth)
	if status == http.StatusNotFound {
		status, answer = s.do(t, http.MethodPost, "/"+collection, body, &auth)
	}
	if status != http.StatusOK && status != http.StatusCreated {
		t.Fatalf("putting %s into /%s: %d %s", body, collection, status, answer)
	}
}

func (s *Server) do(t testing.TB, method, path string, body []byte, auth *Auth) (int, []byte) {
	t.Helper()
	status, answer, err := s.send(context.Background(), method, path, body, auth)
	if err != nil {
		t.Fatal(err)
	}
	return status, answer
}

func (s *Server) send(ctx context.Context, method, path string, body []byte, auth *Auth) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != nil {
		switch {
		case auth.Bearer != "":
			req.Header.Set("Authorization", "Bearer "+auth.Bearer)
		case auth.User != "":
			req.SetBasicAuth(auth.User, auth.Password)
		case auth.Header != "":
			req.Header.Set(auth.Header, auth.Key)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s on json-server: %w (its output: %s)", method, path, err, s.stderr)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s on json-server: reading the answer: %w", method, path, err)
	}
	return resp.StatusCode, answer, nil
}

// lockedBuffer keeps the server's stderr for error messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}
