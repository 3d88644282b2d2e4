package health_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/syncline/syncline/pkg/health"
)

func TestReadyOnlyWhenStartedAndEveryProbePasses(t *testing.T) {
	c := health.NewChecker()
	var storeDown atomic.Bool
	c.Add("store", func(context.Context) error {
		if storeDown.Load() {
			return errors.New("connection refused")
		}
		return nil
	})
	mux := http.NewServeMux()
	c.Mount(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("before start /readyz = %d, want 503", code)
	}
	c.SetReady(true)
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("started /readyz = %d, want 200", code)
	}
	storeDown.Store(true)
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "store: connection refused") {
		t.Errorf("store down: /readyz = %d %q, want 503 naming the store", code, body)
	}
	if code, _ := get("/livez"); code != http.StatusOK {
		t.Errorf("/livez = %d: liveness does not depend on dependencies", code)
	}
}
