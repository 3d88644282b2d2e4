package webhook_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/syncline/syncline/connectors/webhook"
	"github.com/syncline/syncline/pkg/envelope"
)

// FuzzRead sends arbitrary requests, signed or not, to an endpoint that takes
// one record and to one that takes an array. Whatever arrives, Read answers
// (never panics): either a delivery whose every record has a key and a
// payload the ingest stream takes, and only when the signature is right, or
// a refusal the sender can act on (400, 401 or 413, with a message).
func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"id":"1001","total":1.5}`), "d-1", int64(0), true, false)
	f.Add([]byte(`[{"id":1},{"id":"2","v":"2024-05-01T12:00:00Z"}]`), "d-2", int64(0), true, true)
	f.Add([]byte(`{"id":{"x":1}}`), "d.3", int64(400), true, false)
	f.Add([]byte(`[`), "", int64(-1<<62), false, true)
	object := settings(f, map[string]any{"max_body_bytes": 4096})
	array := settings(f, map[string]any{"max_body_bytes": 4096, "body": "array", "version_field": "v"})
	f.Fuzz(func(t *testing.T, body []byte, delivery string, offset int64, sign, isArray bool) {
		s := object
		if isArray {
			s = array
		}
		ts := now.Unix() + offset
		r := httptest.NewRequest(http.MethodPost, "/hooks/acme/shop/order", bytes.NewReader(body))
		r.Header.Set("X-Syncline-Delivery", delivery)
		r.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts, 10))
		sig := "sha256=00"
		if sign {
			sig = webhook.Sign([]byte(secret), delivery, ts, body)
		}
		r.Header.Set(webhook.HeaderSignature, sig)
		d, err := s.Read(httptest.NewRecorder(), r, now)
		if err != nil {
			var we *webhook.Error
			if !errors.As(err, &we) || we.Message == "" || (we.Status != 400 && we.Status != 401 && we.Status != 413) {
				t.Fatalf("Read refused with %#v, want a 400, 401 or 413 with a message", err)
			}
			return
		}
		if !sign {
			t.Fatalf("a request signed wrongly was read: %+v", d)
		}
		if d.ID != delivery || len(d.Records) == 0 {
			t.Fatalf("Read = %+v for delivery %q", d, delivery)
		}
		for _, rec := range d.Records {
			if envelope.ValidateKey(rec.Key) != nil || envelope.CheckRecord(rec.Payload) != nil || (isArray && rec.Version <= 0) {
				t.Fatalf("Read returned record %+v, which the ingest stream refuses", rec)
			}
		}
	})
}
