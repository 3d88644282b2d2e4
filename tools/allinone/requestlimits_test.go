package allinone_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// countingBody is an endless request body that counts what the client sent.
type countingBody struct {
	sent atomic.Int64
	max  int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	left := b.max - b.sent.Load()
	if left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	clear(p)
	b.sent.Add(int64(len(p)))
	return len(p), nil
}

// post sends body to an API method in the connect protocol (JSON) and
// returns the connect error code and message of the answer.
func post(t *testing.T, url, token string, body io.Reader, size int64) (code, message string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// The server may close the connection while the client still
		// sends; then the answer is lost, which the caller sees as no code.
		return "", err.Error()
	}
	defer resp.Body.Close()
	var e struct{ Code, Message string }
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("answer %d is not a connect error: %s", resp.StatusCode, b)
	}
	return e.Code, e.Message
}

// TestAPIRequestLimits: a request without a token is refused before its
// body is read, however large it is; a request with one is refused once it
// passes its API's limit, with an error naming the limit.
func TestAPIRequestLimits(t *testing.T) {
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: dir + "/erp.db"})
	ingestURL := e.in.APIURL() + "/syncline.ingest.v1.IngestService/Publish"

	// 256 MiB without a token: the server answers from the header. What
	// the client gets to send before the answer is what the socket buffers
	// take, far less than the body.
	body := &countingBody{max: 256 << 20}
	code, msg := post(t, ingestURL, "", body, body.max)
	if sent := body.sent.Load(); sent >= body.max/2 {
		t.Errorf("the client sent %d bytes of an unauthenticated request before it was refused, want the refusal before the body", sent)
	}
	if code != "unauthenticated" && code != "" {
		t.Errorf("unauthenticated request: %s %s, want unauthenticated", code, msg)
	}

	for _, tc := range []struct {
		api, url string
		size     int
		want     string
	}{
		{"ingest", ingestURL, 9 << 20, "the ingest API takes at most 8 MiB (8388608 bytes) per request, this one is 9437184 bytes: send fewer changes per request"},
		{"control plane", e.in.APIURL() + "/syncline.controlplane.v1.ResourceService/Apply", 17 << 20, "the control plane API takes at most 16 MiB"},
		{"log", e.in.APIURL() + "/syncline.eventlog.v1.LogService/QueryLogs", 1 << 20, "the log API takes at most 64 KiB"},
		{"dead letters", e.in.APIURL() + "/syncline.eventlog.v1.DeadLetterService/EditDeadLetter", 3 << 20, "the dead-letter API takes at most 2 MiB"},
	} {
		t.Run(tc.api, func(t *testing.T) {
			b := []byte(`{"x":"` + strings.Repeat("a", tc.size-8) + `"}`)
			code, msg := post(t, tc.url, e.in.AdminToken(), bytes.NewReader(b), int64(len(b)))
			if code != "resource_exhausted" || !strings.Contains(msg, tc.want) {
				t.Errorf("%d bytes to the %s API: %s %q, want resource_exhausted saying %q", len(b), tc.api, code, msg, tc.want)
			}
		})
	}
}
