// Package console is the web console: server-rendered pages, served by the control plane
// (and the all-in-one process) at /, for the people who own an integration and the SREs
// looking at a failure. It calls the public APIs only, with the signed-in user's own token,
// so it can never do what the API refuses: an integrator token sees its tenant and nothing
// else. Its pages and assets are embedded in the binary; no JavaScript build step.
package console

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/secret"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Config is what the console needs.
type Config struct {
	// API serves the public APIs the console calls (behind the token check, as callers
	// reach them); the console calls it in process.
	API http.Handler
	// Sessions seals the sign-in cookies: the platform's master key box, so that a cookie
	// is good on every replica.
	Sessions *secret.Box
	// TraceURL is the link of a trace, with {traceId} where its id goes (a Jaeger, Tempo
	// or Grafana address); empty: trace ids are shown without a link.
	TraceURL string
	Logger   *slog.Logger
	// Connectors are the connector types endpoints may have, as the control plane
	// registers them: the endpoints page offers them, and says what each takes. The API
	// has no call that lists them; nil: the type is typed in.
	Connectors *connector.Registry
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Console serves the web console.
type Console struct {
	cfg      Config
	log      *slog.Logger
	pages    map[string]*template.Template
	sessions sessions
	client   *http.Client

	// done ends the live streams (Close).
	done      chan struct{}
	closeOnce sync.Once
}

// New returns the console.
func New(cfg Config) (*Console, error) {
	if cfg.API == nil || cfg.Sessions == nil {
		return nil, errors.New("console: the API handler and the session box are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Console{cfg: cfg, log: cfg.Logger.With("api", "console"), sessions: sessions{box: cfg.Sessions, now: cfg.Now},
		client: &http.Client{Transport: handlerTransport{cfg.API}}, done: make(chan struct{})}
	pages, err := parsePages(c.funcs())
	if err != nil {
		return nil, err
	}
	c.pages = pages
	return c, nil
}

// parsePages parses each page with the layout.
func parsePages(funcs template.FuncMap) (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: parsing page %s: %w", base, err)
		}
		pages[base] = t
	}
	return pages, nil
}

// Handler serves the console. Mount it at / on a mux whose API paths are more specific.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFiles, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("POST /logout", c.signedIn(c.logout))
	mux.HandleFunc("GET /{$}", c.signedIn(c.home))
	// A tenant's pages, each page's routes in its own file; nav lists them in the header.
	mux.HandleFunc("GET /t/{tenant}/{$}", c.signedIn(c.dashboard))
	mux.HandleFunc("GET /t/{tenant}/live", c.signedIn(c.dashboardLive))
	mux.HandleFunc("GET /t/{tenant}/logs", c.signedIn(c.logs))
	mux.HandleFunc("GET /t/{tenant}/logs/live", c.signedIn(c.logsLive))
	mux.HandleFunc("GET /t/{tenant}/reports", c.signedIn(c.reports))
	mux.HandleFunc("GET /t/{tenant}/deadletters", c.signedIn(c.deadLetters))
	mux.HandleFunc("GET /t/{tenant}/deadletters/{id}", c.signedIn(c.deadLetter))
	mux.HandleFunc("POST /t/{tenant}/deadletters/{id}/record", c.signedIn(c.deadLetterRecord))
	mux.HandleFunc("POST /t/{tenant}/deadletters/{id}/edit", c.signedIn(c.editDeadLetter))
	mux.HandleFunc("POST /t/{tenant}/deadletters/{id}/replay", c.signedIn(c.replayDeadLetter))
	mux.HandleFunc("POST /t/{tenant}/deadletters/{id}/discard", c.signedIn(c.discardDeadLetter))
	mux.HandleFunc("GET /t/{tenant}/endpoints", c.signedIn(c.endpoints))
	mux.HandleFunc("POST /t/{tenant}/endpoints", c.signedIn(c.addEndpoint))
	mux.HandleFunc("GET /t/{tenant}/endpoints/{name}", c.signedIn(c.endpoint))
	mux.HandleFunc("POST /t/{tenant}/endpoints/{name}", c.signedIn(c.saveEndpoint))
	mux.HandleFunc("POST /t/{tenant}/endpoints/{name}/test", c.signedIn(c.testEndpoint))
	mux.HandleFunc("GET /t/{tenant}/endpoints/{name}/delete", c.signedIn(c.confirmDeleteEndpoint))
	mux.HandleFunc("POST /t/{tenant}/endpoints/{name}/delete", c.signedIn(c.deleteEndpoint))
	c.integratorRoutes(mux)
	c.flowRoutes(mux)
	return headers(mux)
}

// navItem is a page of a tenant in the header's navigation.
type navItem struct {
	Title string
	// Path is the page's path under /t/<tenant>/.
	Path string
}

// nav lists a tenant's pages, in the header's order.
var nav = []navItem{
	{"Dashboard", ""},
	{"Endpoints", "endpoints"},
	{"Integrators", "integrators"},
	{"Flows", "flows"},
	{"API log", "logs"},
	{"Reports", "reports"},
	{"Dead letters", "deadletters"},
}

// headers sets what every page of the console sends: no framing by other sites, no
// content sniffing, no referrer to other sites, and scripts of its own only.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
		next.ServeHTTP(w, r)
	})
}

// request is one signed-in request: its session, and the API clients that call with its
// token.
type request struct {
	sess      session
	resources controlplanev1connect.ResourceServiceClient
	logs      eventlogv1connect.LogServiceClient
	letters   eventlogv1connect.DeadLetterServiceClient
}

// signedIn runs h for a request with a session, and sends the others to sign in. A form
// that changes something must carry the session's CSRF token.
func (c *Console) signedIn(h func(http.ResponseWriter, *http.Request, *request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, ok := c.sessions.of(r)
		if !ok {
			http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method != http.MethodGet && !csrfOK(r, sess) {
			http.Error(w, "the form did not come from this console's page (its CSRF token is missing or stale): reload the page and send it again", http.StatusForbidden)
			return
		}
		h(w, r, c.clients(sess))
	}
}

// clients returns the API clients that call with sess's token.
func (c *Console) clients(sess session) *request {
	opts := connect.WithInterceptors(auth.Bearer(sess.Token))
	return &request{
		sess:      sess,
		resources: controlplanev1connect.NewResourceServiceClient(c.client, "http://console", opts),
		logs:      eventlogv1connect.NewLogServiceClient(c.client, "http://console", opts),
		letters:   eventlogv1connect.NewDeadLetterServiceClient(c.client, "http://console", opts),
	}
}

// handlerTransport sends a request to a handler in the same process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}
