package apiserver_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connectrpc.com/grpchealth"

	"github.com/syncline/syncline/pkg/apiserver"
)

// TestLimit sends requests around a 1 KiB limit to a connect handler: what
// fits is decoded and answered, what does not is refused with ResourceExhausted naming
// the API, the limit and what to do, whether its size is announced, only
// found by reading, or hidden by compression.
func TestLimit(t *testing.T) {
	l := apiserver.Limit{API: "the probe API", MaxBytes: 1 << 10, Hint: "send less"}
	path, h := grpchealth.NewHandler(grpchealth.NewStaticChecker(), l.Option())
	mux := http.NewServeMux()
	mux.Handle(path, l.Handler(h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	request := func(n int) []byte { return []byte(`{"service":"` + strings.Repeat("a", n) + `"}`) }
	gzipped := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b)
		_ = zw.Close()
		return buf.Bytes()
	}
	for _, tc := range []struct {
		name    string
		body    io.Reader
		gzip    bool
		refused string // "" means answered
	}{
		{"fits", bytes.NewReader(request(1000)), false, ""},
		{"announced too large", bytes.NewReader(request(2000)), false, "the probe API takes at most 1 KiB (1024 bytes) per request, this one is 2014 bytes: send less"},
		{"streamed too large", io.MultiReader(bytes.NewReader(request(2000))), false, "the probe API takes at most 1 KiB (1024 bytes) per request, this one is longer: send less"},
		{"compressed fits", bytes.NewReader(gzipped(request(1000))), true, ""},
		{"expands too large", bytes.NewReader(gzipped(request(100000))), true, "larger than configured max 1024"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, srv.URL+path+"Check", tc.body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if tc.gzip {
				req.Header.Set("Content-Encoding", "gzip")
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var e struct{ Code, Message string }
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("answer is not a connect error: %v: %s", err, b)
			}
			if tc.refused == "" {
				// The checker knows no services: an answer from it means
				// the request was read and decoded.
				if e.Code != "not_found" || !strings.Contains(e.Message, "unknown service") {
					t.Fatalf("answer = %+v, want the checker's not_found", e)
				}
				return
			}
			if e.Code != "resource_exhausted" || !strings.Contains(e.Message, tc.refused) {
				t.Fatalf("refusal = %+v, want resource_exhausted saying %q", e, tc.refused)
			}
		})
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int]string{8 << 20: "8 MiB", 64 << 10: "64 KiB", 1500: "1500 bytes", 1<<20 + 1: "1048577 bytes"} {
		if got := apiserver.Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}
