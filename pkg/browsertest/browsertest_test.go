package browsertest

import (
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// page wraps body in a document that axe-core has nothing to say about.
func page(title, body string) string {
	return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>` + title + `</title>
<style>body{font-family:sans-serif;margin:1rem;color:#111;background:#fff}</style></head>
<body><main><h1>` + title + `</h1>` + body + `</main></body></html>`
}

// site serves the pages the tests visit, on 127.0.0.1, until the test ends.
func site(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	html := func(path, doc string) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, doc)
		})
	}
	html("/good", page("Connectors", `
<form action="/echo">
  <label for="name">Name</label> <input id="name" name="name">
  <label for="country">Country</label>
  <select id="country" name="country"><option value="">Choose</option><option value="NO">Norway</option><option value="SE">Sweden</option></select>
  <button type="submit">Save</button>
</form>`))
	html("/unlabelled", page("Sign in", `
<form action="/echo">
  <input id="email" type="email" name="email">
  <button type="submit">Sign in</button>
</form>`))
	html("/keyboard", page("Keyboard", `
<form>
  <label for="name">Name</label> <input id="name">
  <span tabindex="-1">not in the tab order</span>
  <label>Email <input id="email" type="email"></label>
  <button type="button" disabled>Archived</button>
  <button type="button">Save</button>
</form>`))
	html("/ambiguous", page("Twice", `<button type="button">Save</button> <button type="button">Save</button>`))
	html("/tall", page("Tall", `<div style="height:2400px;border:4px solid #114">a tall page</div><p>the end</p>`))
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page("Saved", fmt.Sprintf("<p>name=%s country=%s</p>", r.FormValue("name"), r.FormValue("country"))))
	})
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: r.FormValue("v"), Path: "/"})
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page("Set", "<p>set</p>"))
	})
	mux.HandleFunc("/show", func(w http.ResponseWriter, r *http.Request) {
		v := "none"
		if c, err := r.Cookie("session"); err == nil {
			v = c.Value
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page("Show", "<p>cookie: "+v+"</p>"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// recorder is a test that keeps what Error reports instead of failing, so a test can check
// that Accessibility fails the test it is given, and with what message.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper()           {}
func (r *recorder) Error(args ...any) { r.errs = append(r.errs, fmt.Sprint(args...)) }

func TestAccessibilityFailsAPageWithAnUnlabelledField(t *testing.T) {
	t.Parallel()
	srv := site(t)
	b := New(t)
	b.Navigate(srv.URL + "/unlabelled")

	rec := &recorder{TB: t}
	b.Accessibility(rec)
	if len(rec.errs) != 1 {
		t.Fatalf("Accessibility reported %d failures for a field without a label, want 1: %q", len(rec.errs), rec.errs)
	}
	msg := rec.errs[0]
	for _, want := range []string{
		srv.URL + "/unlabelled",                                // which page
		"label (critical)",                                     // the rule and its impact
		"Form elements must have labels",                       // the help
		"https://dequeuniversity.com/rules/",                   // where to read more
		`#email  <input id="email" type="email" name="email">`, // the element
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the report lacks %q:\n%s", want, msg)
		}
	}

	var rules []string
	for _, v := range b.Violations() {
		rules = append(rules, v.Rule)
		if v.Rule == "label" && (len(v.Nodes) != 1 || v.Nodes[0].Target != "#email") {
			t.Errorf("the label violation names %+v, want the one element #email", v.Nodes)
		}
	}
	if strings.Join(rules, ",") != "label" {
		t.Errorf("violations %q, want only label", rules)
	}
}

func TestAccessibilityPassesALabelledPage(t *testing.T) {
	t.Parallel()
	srv := site(t)
	b := New(t)
	b.Navigate(srv.URL + "/good")
	b.Accessibility(t)
	// A second check reuses the axe-core the first injected.
	if vs := b.Violations(); len(vs) != 0 {
		t.Errorf("a second check found %+v", vs)
	}
}

func TestScreenshotsAreFullPagePNGsAtEachWidth(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvArtifacts, dir)
	srv := site(t)
	b := New(t)
	b.Navigate(srv.URL + "/tall")

	paths := b.Screenshots("tall")
	want := []string{filepath.Join(dir, "screenshots", "tall-1280.png"), filepath.Join(dir, "screenshots", "tall-390.png")}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Fatalf("Screenshots wrote %q, want %q", paths, want)
	}
	for i, width := range []int{1280, 390} {
		f, err := os.Open(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s is not a PNG: %v", paths[i], err)
		}
		if cfg.Width != width {
			t.Errorf("%s is %d px wide, want %d", paths[i], cfg.Width, width)
		}
		// The page is 2400 px tall and the viewport 800 px: the picture holds the whole page.
		if cfg.Height < 2400 {
			t.Errorf("%s is %d px tall, want the whole page (over 2400 px), not the viewport", paths[i], cfg.Height)
		}
	}
	if b.width != DefaultWidth || b.height != DefaultHeight {
		t.Errorf("after Screenshots the viewport is %d×%d, want it back at %d×%d", b.width, b.height, DefaultWidth, DefaultHeight)
	}
	if _, err := b.screenshot("../escape"); err == nil || !strings.Contains(err.Error(), `"../escape"`) {
		t.Errorf("a screenshot name with a folder gave %v, want an error naming it", err)
	}
}

func TestScreenshotDirDefaultsToTheModuleRoot(t *testing.T) {
	t.Setenv(EnvArtifacts, "")
	got, err := ScreenshotDir()
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("../..") // this package is pkg/browsertest in the module
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "artifacts", "screenshots"); got != want {
		t.Errorf("ScreenshotDir() = %s, want %s", got, want)
	}
}

func TestEachTestHasItsOwnCookies(t *testing.T) {
	srv := site(t)
	t.Run("first sets a cookie", func(t *testing.T) {
		b := New(t)
		b.Navigate(srv.URL + "/set?v=first")
		b.Navigate(srv.URL + "/show")
		// The cookie holds within one test's browser.
		b.WaitText("cookie: first")
	})
	t.Run("second sees none", func(t *testing.T) {
		b := New(t)
		b.Navigate(srv.URL + "/show")
		b.WaitText("cookie: none")
	})
	t.Run("two at once", func(t *testing.T) {
		b1, b2 := New(t), New(t)
		b1.Navigate(srv.URL + "/set?v=one")
		b2.Navigate(srv.URL + "/set?v=two")
		b1.Navigate(srv.URL + "/show")
		b2.Navigate(srv.URL + "/show")
		b1.WaitText("cookie: one")
		b2.WaitText("cookie: two")
	})
}

func TestTabMovesFocusToTheNextControl(t *testing.T) {
	t.Parallel()
	srv := site(t)
	b := New(t)
	b.Navigate(srv.URL + "/keyboard")
	if got := b.Focused(); got != "" {
		t.Errorf("before any key the focus is on %s, want nothing", got)
	}
	// The span with tabindex -1 and the disabled button are skipped.
	for _, want := range []string{`textbox "Name"`, `textbox "Email"`, `button "Save"`} {
		b.Tab()
		if got := b.Focused(); got != want {
			t.Fatalf("after Tab the focus is on %s, want %s", got, want)
		}
	}
	b.ShiftTab()
	if got, want := b.Focused(), `textbox "Email"`; got != want {
		t.Errorf("after Shift+Tab the focus is on %s, want %s", got, want)
	}
}

func TestFillAndClickByAccessibleName(t *testing.T) {
	t.Parallel()
	srv := site(t)
	b := New(t)
	b.Navigate(srv.URL + "/good")
	b.Fill("Name", "Grace")
	b.Fill("Name", "Ada") // replaces, does not append
	b.Fill("Country", "Norway")
	if got := b.Value("Name"); got != "Ada" {
		t.Errorf("the field Name holds %q, want Ada", got)
	}
	if got := b.Value("Country"); got != "NO" {
		t.Errorf("the select Country holds %q, want NO", got)
	}
	b.ClickText("Save")
	b.WaitText("name=Ada country=NO")
	if got := b.Text("main p"); got != "name=Ada country=NO" {
		t.Errorf("the saved page says %q", got)
	}
	if got := b.Title(); got != "Saved" {
		t.Errorf("title %q, want Saved", got)
	}
	if got, want := b.URL(), srv.URL+"/echo?name=Ada&country=NO"; got != want {
		t.Errorf("URL %s, want %s", got, want)
	}
}

func TestFailuresNameWhatAndWhere(t *testing.T) {
	t.Parallel()
	srv := site(t)
	b := New(t)
	b.Timeout = 500 * time.Millisecond

	cases := []struct {
		name string
		page string
		step func() error
		want []string
	}{{
		name: "no control of that name",
		page: "/good",
		step: func() error { return b.clickText("Delete") },
		want: []string{`clicking the control named "Delete"`, srv.URL + "/good", "not done within 500ms", `is named "Delete"`},
	}, {
		name: "two controls of that name",
		page: "/ambiguous",
		step: func() error { return b.clickText("Save") },
		want: []string{srv.URL + "/ambiguous", `2 controls are named "Save"`},
	}, {
		name: "a field without a label",
		page: "/unlabelled",
		step: func() error { return b.fill("Email", "ada@example.com") },
		want: []string{`filling the field labelled "Email"`, srv.URL + "/unlabelled", "is it labelled?"},
	}, {
		name: "a select without that option",
		page: "/good",
		step: func() error { return b.fill("Country", "Denmark") },
		want: []string{`filling the field labelled "Country"`, `no option "Denmark"`, `"Norway", "Sweden"`},
	}, {
		name: "a selector that matches nothing",
		page: "/good",
		step: func() error { return b.click("#delete") },
		want: []string{`clicking "#delete"`, srv.URL + "/good", "not done within 500ms"},
	}, {
		name: "text that never shows",
		page: "/good",
		step: func() error { return b.waitText("Saved at") },
		want: []string{`waiting for the text "Saved at"`, srv.URL + "/good", "the page shows:", "Connectors Name Country"},
	}}
	for _, c := range cases {
		b.Navigate(srv.URL + c.page)
		err := c.step()
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, want := range c.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: the error lacks %q:\n%v", c.name, want, err)
			}
		}
	}
}

func TestNavigateStatusReportsTheHTTPStatus(t *testing.T) {
	t.Parallel()
	srv := site(t)
	b := New(t)
	if got := b.NavigateStatus(srv.URL + "/no-such-page"); got != http.StatusNotFound {
		t.Errorf("status %d, want 404", got)
	}
	if got := b.NavigateStatus(srv.URL + "/good"); got != http.StatusOK {
		t.Errorf("status %d, want 200", got)
	}
}
