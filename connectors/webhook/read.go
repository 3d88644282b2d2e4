package webhook

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/syncline/syncline/pkg/apiserver"
	"github.com/syncline/syncline/pkg/envelope"
)

// MaxDeliveryIDBytes bounds a delivery id.
const MaxDeliveryIDBytes = 128

// Delivery is one request, checked: who sent it is proven, and its records
// are valid and keyed.
type Delivery struct {
	// ID is the sender's delivery id, the same on every retry.
	ID      string
	Records []Record
}

// Record is one record of a delivery.
type Record struct {
	Key string
	// Version is the record's version_field, as a whole number (an RFC 3339
	// time in Unix microseconds); 0 when the endpoint has none.
	Version int64
	Payload json.RawMessage
}

// Error is Read's refusal: the HTTP status to answer and a message that
// tells the sender what to fix. It never holds the body or a secret.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

func refuse(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// Read checks a request against the endpoint's settings and returns its
// delivery, or an *Error: 413 for a body over max_body_bytes (refused on its
// Content-Length before a byte is read, else as soon as reading passes the
// limit), 401 for a missing or wrong token or signature or a timestamp
// outside the window, 408 for a body that did not arrive before the
// request's read deadline, 400 for a missing delivery id or a body that is
// not the records the endpoint takes. w is the request's writer, which
// http.MaxBytesReader tells to close the connection of an oversized body.
// now is the receiver's clock.
func (s Settings) Read(w http.ResponseWriter, r *http.Request, now time.Time) (Delivery, error) {
	if r.ContentLength > s.MaxBody {
		return Delivery{}, s.tooLarge()
	}
	var timestamp string
	switch s.Auth {
	case AuthToken:
		if !tokenMatches(token(r.Header), s.Secret) {
			return Delivery{}, refuse(http.StatusUnauthorized, "the token is missing or wrong: send the endpoint's secret in %s (or Authorization: Bearer)", HeaderToken)
		}
	default:
		sig := r.Header.Get(HeaderSignature)
		if !strings.HasPrefix(sig, signaturePrefix) {
			return Delivery{}, refuse(http.StatusUnauthorized, "%s is missing or not sha256=<hex>: sign each request as the README's webhooks section says", HeaderSignature)
		}
		timestamp = r.Header.Get(HeaderTimestamp)
		if err := s.checkTimestamp(timestamp, now); err != nil {
			return Delivery{}, err
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.MaxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return Delivery{}, s.tooLarge()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return Delivery{}, refuse(http.StatusRequestTimeout, "the body took too long to arrive: send it at once, and the delivery again")
	case err != nil:
		return Delivery{}, refuse(http.StatusBadRequest, "reading the body: %v", err)
	}
	delivery := r.Header.Get(s.DeliveryHeader)
	if s.Auth != AuthToken && !signatureMatches(r.Header.Get(HeaderSignature), []byte(s.Secret), delivery, timestamp, body) {
		return Delivery{}, refuse(http.StatusUnauthorized,
			"%s does not match: sign <delivery id>.<timestamp>.<raw body> with HMAC-SHA256 under the endpoint's secret, the delivery id as sent in %s and the timestamp as sent in %s",
			HeaderSignature, s.DeliveryHeader, HeaderTimestamp)
	}
	if err := checkDeliveryID(s.DeliveryHeader, delivery); err != nil {
		return Delivery{}, err
	}
	records, err := s.records(body)
	if err != nil {
		return Delivery{}, err
	}
	return Delivery{ID: delivery, Records: records}, nil
}

func (s Settings) tooLarge() *Error {
	return refuse(http.StatusRequestEntityTooLarge, "the body is larger than this endpoint takes, %s (max_body_bytes): send fewer records per request", apiserver.Size(int(s.MaxBody)))
}

// token is the token a request carries: X-Syncline-Token, else a bearer
// token.
func token(h http.Header) string {
	if t := h.Get(HeaderToken); t != "" {
		return t
	}
	a := h.Get("Authorization")
	if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

func (s Settings) checkTimestamp(ts string, now time.Time) *Error {
	if ts == "" {
		return refuse(http.StatusUnauthorized, "%s is missing: send the time of signing in Unix seconds", HeaderTimestamp)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || strings.HasPrefix(ts, "+") {
		return refuse(http.StatusUnauthorized, "%s %q is not a time in Unix seconds", HeaderTimestamp, truncate(ts))
	}
	// Compared in seconds, against bounds that cannot overflow.
	window := int64(s.Window / time.Second)
	if at := now.Unix(); sec < at-window || sec > at+window {
		return refuse(http.StatusUnauthorized, "%s %d is %s from the receiver's clock, outside this endpoint's window of %s (timestamp_window): sign each attempt, retries too, with the current time, and check the sender's clock",
			HeaderTimestamp, sec, skew(at, sec), s.Window)
	}
	return nil
}

// skew says how far apart two times in Unix seconds are; in floating point,
// since a timestamp a sender made up may be as far from now as int64 allows.
func skew(a, b int64) string {
	d := math.Abs(float64(a) - float64(b))
	if d > 100*365*24*3600 {
		return "more than a century"
	}
	return (time.Duration(d) * time.Second).String()
}

// checkDeliveryID checks a delivery id: 1 to MaxDeliveryIDBytes of printable
// ASCII without spaces or '.', which separates it in the signed text.
func checkDeliveryID(header, id string) *Error {
	if id == "" {
		return refuse(http.StatusBadRequest, "%s is missing: send an id of the delivery, the same on every retry of it, so that a retry is stored once", header)
	}
	if len(id) > MaxDeliveryIDBytes {
		return refuse(http.StatusBadRequest, "%s is %d bytes: use at most %d, e.g. a UUID", header, len(id), MaxDeliveryIDBytes)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' || c == '.' {
			return refuse(http.StatusBadRequest, "%s has %q at byte %d: use printable ASCII without spaces or '.', e.g. a UUID", header, c, i+1)
		}
	}
	return nil
}

// records splits the body into its records and reads each one's key and
// version.
func (s Settings) records(body []byte) ([]Record, error) {
	if s.Body != BodyArray {
		rec, err := s.record(body)
		if err != nil {
			return nil, refuse(http.StatusBadRequest, "the body %v", err)
		}
		return []Record{rec}, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		if err := envelope.CheckRecord(body); errors.Is(err, envelope.ErrNotJSON) {
			return nil, refuse(http.StatusBadRequest, "the body is %s", reason(err))
		}
		return nil, refuse(http.StatusBadRequest, "the body is not a JSON array of records: this endpoint takes an array (body array), such as [{\"%s\": \"1001\"}]", s.KeyField)
	}
	if len(raws) == 0 {
		return nil, refuse(http.StatusBadRequest, "the body is an empty array: send at least one record")
	}
	out := make([]Record, len(raws))
	for i, raw := range raws {
		rec, err := s.record(raw)
		if err != nil {
			return nil, refuse(http.StatusBadRequest, "record %d of the body %v", i, err)
		}
		out[i] = rec
	}
	return out, nil
}

// record checks one record as the ingest stream takes it, and reads its key
// and version. Its error reads after "the body" or "record 2 of the body".
func (s Settings) record(raw []byte) (Record, error) {
	if err := envelope.CheckRecord(raw); err != nil {
		return Record{}, fmt.Errorf("is not a record Syncline takes: %s", reason(err))
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return Record{}, fmt.Errorf("is not a record Syncline takes: %w", err)
	}
	rec := Record{Payload: json.RawMessage(raw)}
	v, ok := lookup(doc, s.KeyField)
	if !ok {
		return Record{}, fmt.Errorf("has no %s, the record's key (key_field): send it, or set the endpoint's key_field to the field that holds the key", s.KeyField)
	}
	switch k := v.(type) {
	case string:
		rec.Key = k
	case json.Number:
		if _, err := strconv.ParseInt(k.String(), 10, 64); err != nil {
			return Record{}, fmt.Errorf("has %s, the record's key (key_field), as a number that is not whole: send the key as a string", s.KeyField)
		}
		rec.Key = k.String()
	default:
		return Record{}, fmt.Errorf("has %s, the record's key (key_field), as %s: send a string or a whole number", s.KeyField, kind(v))
	}
	if err := envelope.ValidateKey(rec.Key); err != nil {
		return Record{}, fmt.Errorf("has a key (%s) Syncline cannot take: %w", s.KeyField, err)
	}
	if s.VersionField == "" {
		return rec, nil
	}
	v, ok = lookup(doc, s.VersionField)
	if !ok {
		return Record{}, fmt.Errorf("has no %s, the record's version (version_field): send it, so that an older change never overwrites a newer one", s.VersionField)
	}
	version, err := parseVersion(v)
	if err != nil {
		return Record{}, fmt.Errorf("has %s, the record's version (version_field), %w", s.VersionField, err)
	}
	rec.Version = version
	return rec, nil
}

// parseVersion reads a version: a whole number above 0, as a number or a
// string, or an RFC 3339 time, in Unix microseconds.
func parseVersion(v any) (int64, error) {
	var n int64
	switch x := v.(type) {
	case json.Number:
		var err error
		if n, err = strconv.ParseInt(x.String(), 10, 64); err != nil {
			return 0, errors.New("as a number that is not a whole one within 64 bits: send a sequence or an RFC 3339 time")
		}
	case string:
		if i, err := strconv.ParseInt(x, 10, 64); err == nil {
			n = i
			break
		}
		t, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return 0, errors.New("as a string that is neither a whole number nor an RFC 3339 time (2024-05-01T12:00:00Z)")
		}
		n = t.UnixMicro()
	default:
		return 0, fmt.Errorf("as %s: send a whole number or an RFC 3339 time", kind(v))
	}
	if n <= 0 {
		return 0, errors.New("at 0 or below: a version counts up from 1 (an RFC 3339 time after 1970)")
	}
	return n, nil
}

// lookup follows a dotted path through nested objects.
func lookup(doc map[string]any, path string) (any, bool) {
	var v any = doc
	for _, name := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[name]; !ok || v == nil {
			return nil, false
		}
	}
	return v, true
}

// reason is a record's refusal without the words that say it is one.
func reason(err error) string {
	return strings.TrimPrefix(err.Error(), envelope.ErrInvalidPayload.Error()+": ")
}

func kind(v any) string {
	switch v.(type) {
	case bool:
		return "true or false"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return "a value of another kind"
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// eventSpace is the namespace of webhook event ids.
var eventSpace = uuid.MustParse("5b1c0f3e-8a4d-4c2e-9f61-3d7a0e9b2c41")

// EventID is the event id of record index of a delivery: derived from the
// tenant, endpoint, entity, delivery id and index, so that a delivery the
// sender retries gets the ids it got before, and the ingest stream stores
// it once. It is a UUID (version 8, from SHA-256).
func EventID(tenant, endpoint, entity, delivery string, index int) string {
	data := strings.Join([]string{tenant, endpoint, entity, delivery, strconv.Itoa(index)}, "\x00")
	return uuid.NewHash(sha256.New(), eventSpace, []byte(data), 8).String()
}
