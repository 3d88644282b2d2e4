package webhook_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/connectors/webhook"
	"github.com/syncline/syncline/services/eventlog/eventlog"
)

// TestSignIsTheAlertsScheme: a sender that checks Syncline's alerts with
// eventlog.Sign signs to it with the same function, over the delivery id,
// the timestamp and the body; and the README's openssl line gives the same.
func TestSignIsTheAlertsScheme(t *testing.T) {
	body := []byte(`{"id":"1001"}`)
	got := webhook.Sign([]byte(secret), "d-1", 1700000000, body)
	if want := eventlog.Sign([]byte(secret), []byte(`d-1.1700000000.{"id":"1001"}`)); got != want {
		t.Errorf("Sign = %s, want the alerts' %s", got, want)
	}
	// printf '%s' 'd-1.1700000000.{"id":"1001"}' | openssl dgst -sha256 -hmac "$secret"
	if want := "sha256=5336f0486c77d10065434b34938002de81de032daa7bb4b06c6f5096bde28797"; got != want {
		t.Errorf("Sign = %s, want openssl's %s", got, want)
	}
}

var now = time.Unix(1700000000, 0)

type req struct {
	body     string
	delivery string
	ts       int64
	sign     func(body []byte, delivery string, ts int64) string
	header   http.Header
	// length is the Content-Length; -1 sends the body chunked, unannounced.
	length int64
}

// signed is a well-signed request for body.
func signed(body string) req {
	return req{body: body, delivery: "d-1", ts: now.Unix(), length: int64(len(body)),
		sign: func(b []byte, d string, ts int64) string { return webhook.Sign([]byte(secret), d, ts, b) }}
}

func (r req) http() *http.Request {
	var body io.Reader = strings.NewReader(r.body)
	if r.length < 0 {
		body = io.MultiReader(strings.NewReader(r.body)) // no length known
	}
	h := httptest.NewRequest(http.MethodPost, "/hooks/acme/shop/order", body)
	h.ContentLength = r.length
	if r.delivery != "" {
		h.Header.Set("X-Syncline-Delivery", r.delivery)
	}
	if r.ts != 0 {
		h.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(r.ts, 10))
	}
	if r.sign != nil {
		h.Header.Set(webhook.HeaderSignature, r.sign([]byte(r.body), r.delivery, r.ts))
	}
	for k, vs := range r.header {
		h.Header[k] = vs
	}
	return h
}

func settings(t testing.TB, extra map[string]any) webhook.Settings {
	t.Helper()
	m := map[string]any{"secret": secret}
	for k, v := range extra {
		m[k] = v
	}
	s, err := webhook.Open(registry(t), m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReadSigned(t *testing.T) {
	s := settings(t, nil)
	d, err := s.Read(httptest.NewRecorder(), signed(`{"id":"1001","total":1.5}`).http(), now)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "d-1" || len(d.Records) != 1 || d.Records[0].Key != "1001" || d.Records[0].Version != 0 || string(d.Records[0].Payload) != `{"id":"1001","total":1.5}` {
		t.Errorf("Read = %+v", d)
	}
	// The window holds either way, to its edge.
	for _, ts := range []int64{now.Unix() - 300, now.Unix() + 300} {
		r := signed(`{"id":1}`)
		r.ts = ts
		if _, err := s.Read(httptest.NewRecorder(), r.http(), now); err != nil {
			t.Errorf("a request signed %ds from now: %v", ts-now.Unix(), err)
		}
	}
}

// TestReadRefusals: each refusal has its status and says what to fix.
func TestReadRefusals(t *testing.T) {
	hmac := settings(t, nil)
	small := settings(t, map[string]any{"max_body_bytes": 16})
	token := settings(t, map[string]any{"auth": "token"})
	versioned := settings(t, map[string]any{"key_field": "order.number", "version_field": "updated_at"})
	array := settings(t, map[string]any{"body": "array"})
	with := func(r req, f func(r *req)) req { f(&r); return r }
	good := signed(`{"id":"1001"}`)
	for _, tc := range []struct {
		name   string
		s      webhook.Settings
		r      req
		status int
		want   string
	}{
		{"no signature", hmac, with(good, func(r *req) { r.sign = nil }), 401, "X-Syncline-Signature is missing"},
		{"signature without sha256=", hmac, with(good, func(r *req) {
			r.sign = func(b []byte, d string, ts int64) string {
				return strings.TrimPrefix(webhook.Sign([]byte(secret), d, ts, b), "sha256=")
			}
		}), 401, "not sha256=<hex>"},
		{"other secret", hmac, with(good, func(r *req) {
			r.sign = func(b []byte, d string, ts int64) string {
				return webhook.Sign([]byte("another-secret-0123456789abcdef"), d, ts, b)
			}
		}), 401, "X-Syncline-Signature does not match"},
		{"body signed alone, as an alert", hmac, with(good, func(r *req) {
			r.sign = func(b []byte, _ string, _ int64) string { return eventlog.Sign([]byte(secret), b) }
		}), 401, "sign <delivery id>.<timestamp>.<raw body>"},
		{"body changed after signing", hmac, with(good, func(r *req) {
			r.sign = func(_ []byte, d string, ts int64) string {
				return webhook.Sign([]byte(secret), d, ts, []byte(`{"id":"1002"}`))
			}
		}), 401, "does not match"},
		{"delivery id changed after signing", hmac, with(good, func(r *req) {
			r.sign = func(b []byte, _ string, ts int64) string { return webhook.Sign([]byte(secret), "d-2", ts, b) }
		}), 401, "does not match"},
		{"timestamp changed after signing", hmac, with(good, func(r *req) {
			r.sign = func(b []byte, d string, ts int64) string { return webhook.Sign([]byte(secret), d, ts-1, b) }
		}), 401, "does not match"},
		{"no timestamp", hmac, with(good, func(r *req) { r.ts = 0 }), 401, "X-Syncline-Timestamp is missing"},
		{"timestamp in milliseconds", hmac, with(good, func(r *req) { r.ts = now.UnixMilli() }), 401, "is more than a century from the receiver's clock"},
		{"stale timestamp", hmac, with(good, func(r *req) { r.ts = now.Unix() - 301 }), 401, "is 5m1s from the receiver's clock, outside this endpoint's window of 5m0s (timestamp_window)"},
		{"future timestamp", hmac, with(good, func(r *req) { r.ts = now.Unix() + 301 }), 401, "outside this endpoint's window"},
		{"timestamp not a number", hmac, with(good, func(r *req) { r.header = http.Header{"X-Syncline-Timestamp": {"yesterday"}} }), 401, `"yesterday" is not a time in Unix seconds`},
		{"no token", token, with(good, func(r *req) { r.sign = nil }), 401, "the token is missing or wrong"},
		{"wrong token", token, with(good, func(r *req) { r.header = http.Header{"X-Syncline-Token": {secret + "x"}} }), 401, "the token is missing or wrong"},
		{"signature instead of token", token, good, 401, "the token is missing or wrong"},
		{"too large, announced", small, signed(`{"id":"1001","name":"a long name"}`), 413, "larger than this endpoint takes, 16 bytes (max_body_bytes)"},
		{"too large, chunked", small, with(signed(`{"id":"1001","name":"a long name"}`), func(r *req) { r.length = -1 }), 413, "16 bytes (max_body_bytes)"},
		{"too large, unsigned", small, with(signed(`{"id":"1001","name":"a long name"}`), func(r *req) { r.sign = nil }), 413, "max_body_bytes"},
		{"no delivery id", hmac, with(good, func(r *req) { r.delivery = "" }), 400, "X-Syncline-Delivery is missing: send an id of the delivery, the same on every retry"},
		{"delivery id with a dot", hmac, with(good, func(r *req) { r.delivery = "evt.1" }), 400, `X-Syncline-Delivery has '.' at byte 4`},
		{"delivery id too long", hmac, with(good, func(r *req) { r.delivery = strings.Repeat("d", 129) }), 400, "is 129 bytes: use at most 128"},
		{"not JSON", hmac, signed(`{"id":"1001"`), 400, "the body is not a record Syncline takes: not valid JSON at line 1, column 13"},
		{"empty body", hmac, signed(``), 400, "it is empty"},
		{"array to an object endpoint", hmac, signed(`[{"id":"1001"}]`), 400, "the body is not a record Syncline takes: not a JSON object: it is a JSON array"},
		{"no key", hmac, signed(`{"number":"1001"}`), 400, "the body has no id, the record's key (key_field)"},
		{"null key", hmac, signed(`{"id":null}`), 400, "has no id"},
		{"key an object", hmac, signed(`{"id":{"n":1}}`), 400, "has id, the record's key (key_field), as an object: send a string or a whole number"},
		{"key a fraction", hmac, signed(`{"id":1.5}`), 400, "as a number that is not whole"},
		{"empty key", hmac, signed(`{"id":""}`), 400, "has a key (id) Syncline cannot take: source_key is empty"},
		{"nested key missing", versioned, signed(`{"order":{"id":"1"},"updated_at":1}`), 400, "has no order.number"},
		{"no version", versioned, signed(`{"order":{"number":"SO-1"}}`), 400, "has no updated_at, the record's version (version_field)"},
		{"version a word", versioned, signed(`{"order":{"number":"SO-1"},"updated_at":"today"}`), 400, "neither a whole number nor an RFC 3339 time"},
		{"version zero", versioned, signed(`{"order":{"number":"SO-1"},"updated_at":0}`), 400, "at 0 or below"},
		{"version true", versioned, signed(`{"order":{"number":"SO-1"},"updated_at":true}`), 400, "as true or false"},
		{"object to an array endpoint", array, signed(`{"id":"1001"}`), 400, "the body is not a JSON array of records"},
		{"array not JSON", array, signed(`[{"id":"1001"}`), 400, "the body is not valid JSON at line 1"},
		{"empty array", array, signed(`[]`), 400, "the body is an empty array"},
		{"array with a bad record", array, signed(`[{"id":"1"},{"id":"2"},{"name":"x"}]`), 400, "record 2 of the body has no id"},
		{"array with a number", array, signed(`[{"id":"1"},7]`), 400, "record 1 of the body is not a record Syncline takes: not a JSON object: it is a JSON number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := tc.s.Read(httptest.NewRecorder(), tc.r.http(), now)
			var we *webhook.Error
			if !errors.As(err, &we) || we.Status != tc.status || !strings.Contains(we.Message, tc.want) {
				t.Fatalf("Read = %+v, %v; want %d saying %q", d, err, tc.status, tc.want)
			}
			if strings.Contains(we.Message, secret) {
				t.Errorf("the refusal shows the secret: %s", we.Message)
			}
		})
	}
}

// TestReadTooLargeUnread: a body announced larger than the limit is refused
// before a byte of it is read.
func TestReadTooLargeUnread(t *testing.T) {
	s := settings(t, map[string]any{"max_body_bytes": 1024})
	body := &countingReader{r: strings.NewReader(strings.Repeat("x", 4096))}
	r := httptest.NewRequest(http.MethodPost, "/hooks/acme/shop/order", body)
	r.ContentLength = 4096
	_, err := s.Read(httptest.NewRecorder(), r, now)
	var we *webhook.Error
	if !errors.As(err, &we) || we.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("Read = %v, want 413", err)
	}
	if body.n != 0 {
		t.Errorf("%d bytes were read of a body announced too large", body.n)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReadTokenAndVersions(t *testing.T) {
	s := settings(t, map[string]any{"auth": "token", "body": "array", "key_field": "order.number", "version_field": "updated_at", "delivery_header": "X-Shop-Delivery"})
	body := `[{"order":{"number":"SO-1"},"updated_at":"2024-05-01T12:00:00.5Z"},{"order":{"number":7},"updated_at":"42"},{"order":{"number":"SO-3"},"updated_at":43}]`
	for _, h := range []http.Header{
		{"X-Syncline-Token": {secret}, "X-Shop-Delivery": {"77"}},
		{"Authorization": {"Bearer " + secret}, "X-Shop-Delivery": {"77"}},
	} {
		r := httptest.NewRequest(http.MethodPost, "/hooks/acme/shop/order", bytes.NewReader([]byte(body)))
		r.Header = h
		d, err := s.Read(httptest.NewRecorder(), r, now)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		var versions []int64
		for _, rec := range d.Records {
			keys, versions = append(keys, rec.Key), append(versions, rec.Version)
			if !json.Valid(rec.Payload) {
				t.Errorf("record %s: payload %s", rec.Key, rec.Payload)
			}
		}
		want := time.Date(2024, 5, 1, 12, 0, 0, 5e8, time.UTC).UnixMicro()
		if d.ID != "77" || strings.Join(keys, ",") != "SO-1,7,SO-3" || versions[0] != want || versions[1] != 42 || versions[2] != 43 {
			t.Errorf("Read = %s %v %v", d.ID, keys, versions)
		}
	}
}

func TestEventID(t *testing.T) {
	a := webhook.EventID("acme", "shop", "order", "d-1", 0)
	if a != webhook.EventID("acme", "shop", "order", "d-1", 0) {
		t.Error("the same delivery has two event ids")
	}
	seen := map[string]bool{a: true}
	for _, id := range []string{
		webhook.EventID("globex", "shop", "order", "d-1", 0),
		webhook.EventID("acme", "pim", "order", "d-1", 0),
		webhook.EventID("acme", "shop", "product", "d-1", 0),
		webhook.EventID("acme", "shop", "order", "d-2", 0),
		webhook.EventID("acme", "shop", "order", "d-1", 1),
	} {
		if seen[id] {
			t.Errorf("event id %s twice", id)
		}
		seen[id] = true
	}
	if len(a) != 36 || a[14] != '8' {
		t.Errorf("event id %s is not a version 8 UUID", a)
	}
}

// TestReadTimesOut: a body that does not arrive before the request's read
// deadline is refused with 408, so that the sender sends it again.
func TestReadTimesOut(t *testing.T) {
	s := settings(t, map[string]any{"auth": "token"})
	r := httptest.NewRequest(http.MethodPost, "/hooks/acme/shop/order", io.MultiReader(strings.NewReader(`{"id":`), deadlineReader{}))
	r.ContentLength = -1
	r.Header.Set(webhook.HeaderToken, secret)
	r.Header.Set("X-Syncline-Delivery", "d-1")
	_, err := s.Read(httptest.NewRecorder(), r, now)
	var we *webhook.Error
	if !errors.As(err, &we) || we.Status != http.StatusRequestTimeout || !strings.Contains(we.Message, "took too long") {
		t.Fatalf("Read = %v, want 408", err)
	}
}

type deadlineReader struct{}

func (deadlineReader) Read([]byte) (int, error) { return 0, os.ErrDeadlineExceeded }
