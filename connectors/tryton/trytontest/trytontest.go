// Package trytontest runs real Tryton 6.0 servers for tests: it builds a seeded template
// database once per machine (cached, keyed by the seed script, the modules, the server's
// version and the year), starts one trytond per test package on 127.0.0.1 at a free port,
// and gives each test a fresh copy of the template under a database name of its own.
//
// The Debian packages must be installed (make tryton does it); Start says so when they are
// not. Typical use:
//
//	func TestMain(m *testing.M) {
//		srv, err := trytontest.Start()
//		if err != nil { fmt.Fprintln(os.Stderr, err); os.Exit(1) }
//		code := m.Run()
//		srv.Stop()
//		os.Exit(code)
//	}
//
// and in a test db := srv.NewDatabase(t).
package trytontest

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

//go:embed seed.py
var seedScript []byte

// The users the seed creates.
const (
	AdminUser     = "admin"
	AdminPassword = "admin"
	// ProbeUser is a second login for tests of wrong passwords, so that the failed
	// attempts Tryton counts (and throttles) never touch the admin's.
	ProbeUser     = "probe"
	ProbePassword = "probe-Pass-2026"
)

// modules are activated on the template, with what they depend on.
var modules = []string{"party_relationship", "product_attribute", "sale"}

// passlib makes the test databases' password hashes cheap (bcrypt with 4 rounds, not 12):
// every login checks one, and at Tryton's default each costs about 0.3 s of a test's setup.
// Test servers only; it says nothing about how a real Tryton should hash.
const passlib = "[passlib]\nschemes = bcrypt\nbcrypt__default_rounds = 4\n"

// config is a trytond.conf serving the databases of dir; listen is host:port, or empty for
// trytond-admin and the seed, which serve nothing.
func config(dir, listen string) ([]byte, error) {
	ini := filepath.Join(dir, "passlib.ini")
	if err := os.WriteFile(ini, []byte(passlib), 0o644); err != nil {
		return nil, err
	}
	c := "[database]\nuri = sqlite://\npath = " + dir + "\n[password]\npasslib = " + ini + "\n"
	if listen != "" {
		c += "[web]\nlisten = " + listen + "\n"
	}
	return []byte(c), nil
}

// python is Debian's interpreter, which has trytond and proteus; a python3 earlier on
// PATH (a version manager's) has not.
const python = "/usr/bin/python3"

// Template returns the path of the seeded template database, building it when this machine
// has none for the current seed. Parallel test packages build it once: the build runs under
// a file lock, into a temporary file renamed into place.
func Template() (string, error) {
	if _, err := exec.LookPath("trytond-admin"); err != nil {
		return "", errors.New("trytond-admin is not installed: run `make tryton` (it installs Debian's tryton-server and modules)")
	}
	version, err := exec.Command("trytond", "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("asking trytond for its version: %v: %s", err, version)
	}
	h := sha256.New()
	h.Write(seedScript)
	fmt.Fprintf(h, "\x00%s\x00%s\x00%s\x00%d", strings.Join(modules, " "), passlib, version, time.Now().Year())
	key := hex.EncodeToString(h.Sum(nil))[:16]
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "syncline-trytontest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating the template cache: %w", err)
	}
	path := filepath.Join(dir, "template-"+key+".sqlite")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("opening the template lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking the template cache: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(path); err == nil {
		return path, nil // another package built it while this one waited
	}
	if err := build(dir, path); err != nil {
		return "", fmt.Errorf("building the Tryton template database: %w", err)
	}
	// Templates of earlier seeds (or years) are never used again.
	old, _ := filepath.Glob(filepath.Join(dir, "template-*.sqlite"))
	for _, o := range old {
		if o != path {
			os.Remove(o)
		}
	}
	return path, nil
}

// build creates and seeds a database in a work folder and moves it to path.
func build(cache, path string) error {
	work, err := os.MkdirTemp(cache, "build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	conf := filepath.Join(work, "trytond.conf")
	c, err := config(work, "")
	if err != nil {
		return err
	}
	if err := os.WriteFile(conf, c, 0o644); err != nil {
		return err
	}
	pass := filepath.Join(work, "admin-password")
	seed := filepath.Join(work, "seed.py")
	for name, data := range map[string][]byte{pass: []byte(AdminPassword + "\n"), seed: seedScript, filepath.Join(work, "erp.sqlite"): nil} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			return err
		}
	}
	admin := exec.Command("trytond-admin", append([]string{"-c", conf, "-d", "erp", "--all", "--email", "admin@example.com", "--activate-dependencies", "-u"}, modules...)...)
	admin.Env = append(os.Environ(), "TRYTONPASSFILE="+pass)
	if out, err := admin.CombinedOutput(); err != nil {
		return fmt.Errorf("trytond-admin: %v: %s", err, tail(out))
	}
	cmd := exec.Command(python, "-W", "ignore", seed, conf, "erp", ProbePassword)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("seeding: %v: %s", err, tail(out))
	}
	return os.Rename(filepath.Join(work, "erp.sqlite"), path)
}

func tail(out []byte) string {
	s := strings.TrimSpace(string(out))
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}

// Server is one trytond serving the databases of a folder.
type Server struct {
	// URL is the server's root, e.g. http://127.0.0.1:41234.
	URL      string
	dir      string
	template string
	cmd      *exec.Cmd
	exited   chan struct{}
	n        atomic.Int64
}

// Start builds the template if needed and starts a server on a free port of 127.0.0.1,
// returning once it answers.
func Start() (*Server, error) {
	template, err := Template()
	if err != nil {
		return nil, err
	}
	var errs []error
	for range 3 { // the free port may be taken before trytond binds it
		s, err := start(template)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func start(template string) (*Server, error) {
	dir, err := os.MkdirTemp("", "trytond-")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := filepath.Join(dir, "trytond.conf")
	c, err := config(dir, fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(conf, c, 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "trytond.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command("trytond", "-c", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that Stop ends it and anything it starts; and killed with
	// the test binary, so that a test run cut short (a timeout, ^C) leaves no server behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting trytond: %w", err)
	}
	s := &Server{URL: "http://127.0.0.1:" + strconv.Itoa(port), dir: dir, template: template, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := rpc(context.Background(), s.URL+"/", "", "common.server.version"); err == nil {
			return s, nil
		}
		select {
		case <-s.exited:
			log, _ := os.ReadFile(filepath.Join(dir, "trytond.log"))
			os.RemoveAll(dir)
			return nil, fmt.Errorf("trytond on port %d exited: %s", port, tail(log))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("trytond on port %d did not answer within 60s", port)
		}
	}
}

// Stop stops the server and removes its databases.
func (s *Server) Stop() error {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	return os.RemoveAll(s.dir)
}

// Log returns the server's log, for a failing test's message.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "trytond.log"))
	return tail(b)
}

// Database is one test's copy of the template.
type Database struct {
	Server *Server
	Name   string
	// Setup is how long the copy took until it answered a login.
	Setup   time.Duration
	session string
}

// NewDatabase copies the template under a new name and returns once the server answers a
// login to it.
func (s *Server) NewDatabase(t testing.TB) *Database {
	t.Helper()
	db, err := s.OpenDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Tryton database %s ready in %s", db.Name, db.Setup.Round(time.Millisecond))
	return db
}

// OpenDatabase is NewDatabase for callers without a test at hand (the load generator); ctx
// bounds the login.
func (s *Server) OpenDatabase(ctx context.Context) (*Database, error) {
	start := time.Now()
	name := fmt.Sprintf("test%d", s.n.Add(1))
	if err := copyFile(s.template, filepath.Join(s.dir, name+".sqlite")); err != nil {
		return nil, fmt.Errorf("copying the Tryton template: %w", err)
	}
	db := &Database{Server: s, Name: name}
	var res []json.RawMessage
	if err := db.call(ctx, "", &res, "common.db.login", AdminUser, map[string]any{"password": AdminPassword}, "en"); err != nil {
		return nil, fmt.Errorf("logging in to the new Tryton database %s: %w\n%s", name, err, s.Log())
	}
	var uid int64
	var key string
	if len(res) != 2 || json.Unmarshal(res[0], &uid) != nil || json.Unmarshal(res[1], &key) != nil {
		return nil, fmt.Errorf("logging in to %s: unexpected answer %s", name, res)
	}
	db.session = "Session " + base64.StdEncoding.EncodeToString([]byte(AdminUser+":"+strconv.FormatInt(uid, 10)+":"+key))
	db.Setup = time.Since(start)
	return db, nil
}

// Call calls method as the admin with params (the context dict last) and decodes the result
// into out; a test reads records back with it, independently of the connector's client.
func (d *Database) Call(t testing.TB, out any, method string, params ...any) {
	t.Helper()
	if err := d.call(context.Background(), d.session, out, method, params...); err != nil {
		t.Fatalf("%v", err)
	}
}

// CallErr is Call returning the error, for calls a test expects Tryton to refuse, and for
// callers without a test at hand.
func (d *Database) CallErr(out any, method string, params ...any) error {
	return d.call(context.Background(), d.session, out, method, params...)
}

func (d *Database) call(ctx context.Context, session string, out any, method string, params ...any) error {
	raw, err := rpc(ctx, d.Server.URL+"/"+d.Name+"/", session, method, params...)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

func rpc(ctx context.Context, url, session, method string, params ...any) (json.RawMessage, error) {
	if params == nil {
		params = []any{}
	}
	body, err := json.Marshal(map[string]any{"id": 1, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if session != "" {
		req.Header.Set("Authorization", session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", method, resp.StatusCode)
	}
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	if len(r.Error) > 0 && string(r.Error) != "null" {
		return nil, fmt.Errorf("%s: Tryton error %s", method, r.Error)
	}
	return r.Result, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
