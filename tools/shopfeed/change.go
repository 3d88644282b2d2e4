package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/syncline/syncline/pkg/ingest"
)

// source says whose records the changes are and where a record keeps its version.
type source struct {
	Tenant   string
	Endpoint string
	// Updated is the record field that holds when it last changed (RFC 3339).
	Updated string
}

// change is the change event of record i of collection c: keyed by its id, versioned by
// its updated-at in milliseconds, its payload the record as the API sent it. Its event id
// is left to the publisher (a new UUIDv7), so that every feed is a new event whose outcome
// the API log gives: a record fed again unchanged is skipped there as unchanged.
func (s source) change(c collection, i int, raw json.RawMessage) (ingest.Change, error) {
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(raw, &rec); err != nil || rec == nil {
		return ingest.Change{}, fmt.Errorf("%s, record %d: not a JSON object", c.Name, i+1)
	}
	key, err := keyOf(rec["id"])
	if err != nil {
		return ingest.Change{}, fmt.Errorf("%s, record %d: id: %w", c.Name, i+1, err)
	}
	version, err := versionOf(rec[s.Updated])
	if err != nil {
		return ingest.Change{}, fmt.Errorf("%s, record %d (id %s): %s: %w (-updated names the field that says when a record last changed)", c.Name, i+1, key, s.Updated, err)
	}
	return ingest.Change{
		Tenant:   s.Tenant,
		Endpoint: s.Endpoint,
		Entity:   c.Entity,
		Key:      key,
		Version:  version,
		Payload:  raw,
	}, nil
}

// keyOf is a record's id as text: json-server's ids are numbers or strings.
func keyOf(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", fmt.Errorf("missing: every record needs an id, its key in the webshop")
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || s == "" {
		return "", fmt.Errorf("%s is neither a number nor a text", raw)
	}
	return s, nil
}

// versionOf reads an RFC 3339 time as unix milliseconds.
func versionOf(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, fmt.Errorf("missing")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("%s is not a text", raw)
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, fmt.Errorf("%q is not an RFC 3339 time such as 2026-12-01T09:30:00+01:00", s)
	}
	if t.UnixMilli() <= 0 {
		return 0, fmt.Errorf("%q is before 1970", s)
	}
	return t.UnixMilli(), nil
}
