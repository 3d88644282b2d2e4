package auth_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/syncline/syncline/pkg/auth"
)

const adminToken = "sla_test-admin-token-0123456789"

// tokens knows one integrator token.
type tokens map[string][2]string

func (t tokens) LookupToken(_ context.Context, hash string) (string, string, error) {
	v, ok := t[hash]
	if !ok {
		return "", "", auth.ErrUnknownToken
	}
	return v[0], v[1], nil
}

// unreadBody fails the test when anything reads it.
type unreadBody struct{ t *testing.T }

func (b unreadBody) Read([]byte) (int, error) {
	b.t.Error("the body was read before the caller was authenticated")
	return 0, io.EOF
}

func (unreadBody) Close() error { return nil }

// TestHandlerAuthenticatesBeforeTheBody: a call without a valid token is
// refused from its header alone, in the connect protocol, and its body is
// never read; a valid token reaches the API with its principal.
func TestHandlerAuthenticatesBeforeTheBody(t *testing.T) {
	integrator, hash, err := auth.NewIntegratorToken()
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewAuthenticator(adminToken, tokens{hash: {"acme", "shop-sync"}})
	if err != nil {
		t.Fatal(err)
	}
	var got *auth.Principal
	h := a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := auth.FromContext(r.Context())
		if !ok {
			t.Error("the API got no principal")
		}
		got = &p
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	for _, tc := range []struct {
		name, header string
		want         *auth.Principal
	}{
		{"no token", "", nil},
		{"not a bearer token", "Basic " + adminToken, nil},
		{"unknown token", "Bearer sli_not-a-token", nil},
		{"admin", "Bearer " + adminToken, &auth.Principal{Admin: true}},
		{"integrator", "Bearer " + integrator, &auth.Principal{Tenant: "acme", Integrator: "shop-sync"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			r := httptest.NewRequest(http.MethodPost, "/syncline.ingest.v1.IngestService/Publish", nil)
			r.Header.Set("Content-Type", "application/json")
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			if tc.want == nil {
				r.Body = unreadBody{t}
			} else {
				r.Body = io.NopCloser(strings.NewReader("{}"))
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if tc.want != nil {
				if got == nil || *got != *tc.want {
					t.Fatalf("principal = %v, want %v", got, *tc.want)
				}
				return
			}
			if got != nil {
				t.Fatalf("the API was called as %v", *got)
			}
			var body struct{ Code, Message string }
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("refusal is not a connect error: %v: %s", err, w.Body)
			}
			if w.Code != http.StatusUnauthorized || body.Code != "unauthenticated" || !strings.Contains(body.Message, "token") {
				t.Fatalf("refusal = %d %+v, want 401 unauthenticated naming the token", w.Code, body)
			}
		})
	}
}

// TestHandlerPlainHTTP: a request in no RPC protocol is refused as plain
// HTTP 401.
func TestHandlerPlainHTTP(t *testing.T) {
	a, err := auth.NewAuthenticator(adminToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := a.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("the API was called") }))
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/anything", nil)
	h.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "Authorization: Bearer") {
		t.Fatalf("refusal = %d %q, want 401 saying how to send a token", w.Code, w.Body)
	}
}

func TestShortAdminToken(t *testing.T) {
	if _, err := auth.NewAuthenticator("short", nil); err == nil || !strings.Contains(err.Error(), "16 characters") {
		t.Fatalf("err = %v, want the admin token refused as too short", err)
	}
}
