package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/daemon/daemontest"
	"github.com/syncline/syncline/pkg/natstest"
	"github.com/syncline/syncline/pkg/secret"
)

func TestCommand(t *testing.T) { daemontest.CheckMain(t, spec, run) }

// TestServesTheConsole: the control plane serves the web console at /, outside the API's
// token check, while its API stays behind it; without SYNCLINE_EVENTLOG_URL, the API log
// page says to set it.
func TestServesTheConsole(t *testing.T) {
	s := natstest.Run(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	key, err := secret.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	const admin = "an-admin-token-of-some-length"
	t.Setenv("SYNCLINE_NATS_URL", s.ClientURL())
	t.Setenv("SYNCLINE_HTTP_ADDR", addr)
	t.Setenv("SYNCLINE_ADMIN_TOKEN", admin)
	t.Setenv("SYNCLINE_MASTER_KEY", key)
	t.Setenv("SYNCLINE_DATABASE_URL", "sqlite:"+filepath.Join(t.TempDir(), "cp.db"))
	t.Setenv("SYNCLINE_LOG_LEVEL", "error")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("run = %v", err)
		}
	})
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	c := &http.Client{Jar: jar}
	get := func(path string) (int, string) {
		resp, err := c.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := get("/")
		if status == http.StatusOK && strings.Contains(body, `name="token"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ answered %d %s, want the console's sign-in page", status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Post(base+"/syncline.controlplane.v1.ResourceService/ListResources", "application/json", strings.NewReader(`{"kind":"Tenant"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the API without a token answered %d, want 401", resp.StatusCode)
	}
	// Signed in (the cookie is Secure: this jar keeps it for https only, so the test
	// sends it by hand), a tenant's API log says where the eventlog is to be set.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.PostForm(base+"/login", url.Values{"token": {admin}, "next": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "syncline_session" {
			session = ck
		}
	}
	if session == nil {
		t.Fatalf("signing in set no session cookie (status %d)", resp.StatusCode)
	}
	apply := `{"resources":[{"apiVersion":"syncline.dev/v1","kind":"Tenant","metadata":{"name":"acme"},"spec":{}}]}`
	req, _ := http.NewRequest(http.MethodPost, base+"/syncline.controlplane.v1.ResourceService/Apply", strings.NewReader(apply))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+admin)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("applying a tenant: %v %v", resp, err)
	}
	req, _ = http.NewRequest(http.MethodGet, base+"/t/acme/logs", nil)
	req.AddCookie(session)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "SYNCLINE_EVENTLOG_URL") {
		t.Errorf("the API log without the eventlog's address answered %d:\n%s", resp.StatusCode, b)
	}
}
