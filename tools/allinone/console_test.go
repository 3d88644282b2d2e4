package allinone_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/ingest"
)

// browser is an HTTP client with cookies, as a browser signed in to the console is.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The cookie is Secure; a browser sends it to 127.0.0.1 over http as to a secure
	// origin, and so does this jar once told the page is https.
	return &browser{t: t, base: base, c: &http.Client{Jar: secureJar{jar}, Timeout: 30 * time.Second}}
}

// secureJar treats loopback over http as a secure origin, as browsers do.
type secureJar struct{ *cookiejar.Jar }

func (j secureJar) SetCookies(u *url.URL, cs []*http.Cookie) { j.Jar.SetCookies(secure(u), cs) }
func (j secureJar) Cookies(u *url.URL) []*http.Cookie        { return j.Jar.Cookies(secure(u)) }

func secure(u *url.URL) *url.URL {
	v := *u
	v.Scheme = "https"
	return &v
}

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (b *browser) post(path string, form url.Values) (int, string, *http.Response) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.base+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestConsoleSignInAndPages: the console at / signs in with a token (a wrong one is refused
// next to the field), keeps it in a secure, HTTP-only cookie, shows the tenant's dashboard
// and its API log with filters, refuses a change without the page's CSRF token, and an
// integrator's token sees its own tenant only.
func TestConsoleSignInAndPages(t *testing.T) {
	e := start(t, options{dir: t.TempDir(), driver: "sqlite"})
	e.dsn = tenantFile(t, e.dir, "acme", "erp.db")
	e.applyOrders("acme", "orders")
	e.dsn = tenantFile(t, e.dir, "globex", "erp.db")
	e.applyOrders("globex", "orders")
	e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "1001", Version: 1, Payload: order(1001, "paid")})
	e.publish(ingest.Change{Tenant: "globex", Endpoint: "shop", Entity: "order", Key: "G-7", Version: 1, Payload: order(7, "paid")})
	e.waitCreatedOnly(1)

	b := newBrowser(t, e.in.APIURL())
	// Not signed in: to the sign-in page, which says where to go back to.
	if status, body := b.get("/t/acme/logs"); status != http.StatusOK || !strings.Contains(body, `name="next" value="/t/acme/logs"`) {
		t.Fatalf("a page without a session: %d, want the sign-in page\n%s", status, body)
	}
	status, body, _ := b.post("/login", url.Values{"token": {"not-a-token-of-anyone"}, "next": {"/t/acme/logs"}})
	if status != http.StatusUnauthorized || !strings.Contains(body, `id="token-error"`) || !strings.Contains(body, "not recognised") {
		t.Fatalf("a wrong token: %d, want it refused next to the field\n%s", status, body)
	}
	status, body, resp := b.post("/login", url.Values{"token": {e.in.AdminToken()}, "next": {"/t/acme/logs"}})
	if status != http.StatusOK || !strings.Contains(body, "1001") {
		t.Fatalf("signed in: %d, want the API log with order 1001\n%s", status, body)
	}
	var cookie *http.Cookie
	for r := resp; r != nil; r = r.Request.Response {
		for _, c := range r.Cookies() {
			if c.Name == "syncline_session" {
				cookie = c
			}
		}
	}
	if cookie == nil || !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode || strings.Contains(cookie.Value, e.in.AdminToken()) {
		t.Fatalf("the session cookie is %+v: want it HTTP-only, secure, same-site strict, and the token sealed", cookie)
	}

	// The dashboard: the flow and today's record.
	status, body = b.get("/t/acme/")
	if status != http.StatusOK || !strings.Contains(body, "orders") || !regexp.MustCompile(`<dt>Records</dt><dd>1</dd>`).MatchString(body) {
		t.Fatalf("dashboard: %d\n%s", status, body)
	}
	// Filters: a record that does not match is not shown; a bad date is named.
	if _, body := b.get("/t/acme/logs?remote_id=nope"); strings.Contains(body, ">1001<") || !strings.Contains(body, "No records match") {
		t.Errorf("filtering by another remote id still shows order 1001\n%s", body)
	}
	if status, body := b.get("/t/acme/logs?from=yesterday"); status != http.StatusBadRequest || !strings.Contains(body, `id="from-error"`) {
		t.Errorf("a bad date: %d, want it refused next to its field\n%s", status, body)
	}
	// A change without the page's CSRF token is refused; with it, it is done.
	if status, _, _ := b.post("/logout", url.Values{}); status != http.StatusForbidden {
		t.Errorf("sign-out without the CSRF token: %d, want 403", status)
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the page has no CSRF token\n%s", body)
	}
	if status, body, _ := b.post("/logout", url.Values{"csrf": {m[1]}}); status != http.StatusOK || !strings.Contains(body, `name="token"`) {
		t.Fatalf("sign-out: %d, want the sign-in page\n%s", status, body)
	}
	if status, body := b.get("/t/acme/"); status != http.StatusOK || !strings.Contains(body, `name="token"`) {
		t.Fatalf("after signing out the dashboard is shown: %d\n%s", status, body)
	}

	// An integrator of acme sees acme, and nothing of globex.
	rot, err := e.resource.RotateToken(context.Background(), &controlplanev1.RotateTokenRequest{Tenant: "acme", Integrator: "shop-to-erp"})
	if err != nil {
		t.Fatal(err)
	}
	i := newBrowser(t, e.in.APIURL())
	if status, body, _ := i.post("/login", url.Values{"token": {rot.Token}, "next": {"/"}}); status != http.StatusOK || !strings.Contains(body, "Dashboard") || strings.Contains(body, "globex") {
		t.Fatalf("an integrator signed in: %d, want acme's dashboard, no word of globex\n%s", status, body)
	}
	for _, path := range []string{"/t/globex/", "/t/globex/logs", "/t/globex/logs?remote_id=G-7"} {
		status, body := i.get(path)
		if status != http.StatusForbidden || strings.Contains(body, "G-7") {
			t.Errorf("acme's integrator on %s: %d, want refused with nothing of globex\n%s", path, status, body)
		}
	}
}
