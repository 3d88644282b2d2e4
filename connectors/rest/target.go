// Package rest is the target for HTTP APIs that speak JSON: a webshop's, a PIM's, any API with
// a collection per entity that lists records filtered by a query parameter and creates them
// with POST, and an item path to update (PUT or PATCH) and delete them.
//
// The target is a thin adapter: the platform's recipe decides what to find and write (the
// lookup by external reference before a create, the duplicate policy, the write modes), and
// the target turns each Find and Write into requests. A 4xx answer to a write (but 401, 407,
// 408 and 429) is the record's refusal, with the API's message; a 5xx, a timeout or a broken
// connection is an outage of the whole call; 429 and 503 are a *connector.ThrottledError,
// after the endpoint's budget has waited out what it could.
//
// An entity with source settings is polled as well (PolledSource, source.go): the records
// changed at or after a time, sorted by when they changed, page by page.
package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/syncline/syncline/pkg/connector"
)

// checkProbe is the external reference Check looks up: a value no record has, so that the
// lookup proves the API answers and takes the credentials without listing anything.
const checkProbe = "syncline-endpoint-test"

// Target writes records to one API.
type Target struct {
	*client
	// readOnly: opened for a test (endpoint test, flow test), the target sends no write.
	readOnly bool
}

var _ connector.Target = (*Target)(nil)

// Open returns a target for the API of s, whose settings parse checked. Every connection goes
// through env's egress policy and every request through env's budget (one made from s when
// env has none). ctx is not used: the target connects when it first sends.
func Open(_ context.Context, s Settings, env connector.Env) (*Target, error) {
	if env.Egress == nil {
		return nil, errors.New("opening the rest target: no egress policy was given")
	}
	if s.BaseURL == nil || len(s.Entities) == 0 {
		return nil, errors.New("opening the rest target: the settings were not checked (use Register, or parse them)")
	}
	return &Target{client: newClient(s, env), readOnly: env.ReadOnly}, nil
}

// Find looks up, for each value, the records of entity whose field has it, with a GET of the
// collection filtered by the field's query parameter. The answer is checked again here: a
// record is found only when its field named like the query parameter, or like the find field
// (ref_field for the external reference), holds the value. An API that ignores or loosens the
// filter (json-server ignores a parameter no record has a field for, and lists everything)
// thus finds nothing it should not. Any answer but 2xx fails the call: a lookup has no record
// to refuse.
func (t *Target) Find(ctx context.Context, entity, field string, values []string) ([]connector.Found, error) {
	e, err := t.entity(entity)
	if err != nil {
		return nil, err
	}
	param, ok := e.Lookup[field]
	if !ok {
		return nil, fmt.Errorf("finding %s records by %s: settings.entities.%s.lookup names no query parameter for it; it has %s",
			entity, field, entity, strings.Join(slices.Sorted(maps.Keys(e.Lookup)), ", "))
	}
	// The fields of a record that may hold the value: named like the query parameter (the
	// API filters on its own field), or like the find field (the record as the flow sends it).
	stored := []string{param, field}
	if field == connector.FieldExternalRef {
		stored[1] = e.RefField
	}
	var found []connector.Found
	seen := map[string]bool{}
	for _, v := range values {
		if seen[v] {
			continue
		}
		seen[v] = true
		items, err := t.list(ctx, entity, e, url.Values{param: {v}})
		if err != nil {
			return nil, err
		}
		for _, item := range items {
			if holds(item, stored, v) {
				found = append(found, connector.Found{Value: v, ID: item.id, Fields: item.raw})
			}
		}
	}
	return found, nil
}

// item is one record of an answer.
type item struct {
	id     string
	fields map[string]json.RawMessage
	raw    json.RawMessage
}

// list GETs the entity's collection with query and returns its records.
func (t *Target) list(ctx context.Context, entity string, e Entity, query url.Values) ([]item, error) {
	a, err := t.send(ctx, http.MethodGet, e.Path, query, nil)
	if err != nil {
		return nil, err
	}
	if a.status < 200 || a.status > 299 {
		err := a.problem()
		if a.status == http.StatusNotFound {
			err = fmt.Errorf("%w: check settings.entities.%s.path", err, entity)
		}
		return nil, err
	}
	var list []json.RawMessage
	if e.ItemsField == "" {
		var body json.RawMessage
		if err := a.decode(&body); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(body, &list); err != nil {
			return nil, fmt.Errorf("%s answered with JSON that is not a list; if the list is a field of an object, name it in settings.entities.%s.items_field", a.what, entity)
		}
	} else {
		var wrapper map[string]json.RawMessage
		if err := a.decode(&wrapper); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(wrapper[e.ItemsField], &list); err != nil || list == nil && string(wrapper[e.ItemsField]) != "[]" {
			return nil, fmt.Errorf("%s answered with no list in its field %q (settings.entities.%s.items_field)", a.what, e.ItemsField, entity)
		}
	}
	items := make([]item, 0, len(list))
	for _, raw := range list {
		it, err := readItem(raw, e.IDField)
		if err != nil {
			return nil, fmt.Errorf("%s answered with a list of which %v (settings.entities.%s.id_field)", a.what, err, entity)
		}
		items = append(items, it)
	}
	return items, nil
}

// readItem reads one record and its id.
func readItem(raw json.RawMessage, idField string) (item, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return item{}, errors.New("an entry is not a JSON object")
	}
	id, ok := idString(fields[idField])
	if !ok {
		return item{}, fmt.Errorf("a record has no %q field with a string or number", idField)
	}
	return item{id: id, fields: fields, raw: raw}, nil
}

// idString reads an id: a string, or a number as written.
func idString(raw json.RawMessage) (string, bool) {
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if len(raw) == 0 || d.Decode(&v) != nil {
		return "", false
	}
	switch v := v.(type) {
	case string:
		return v, v != ""
	case json.Number:
		return v.String(), true
	}
	return "", false
}

// holds reports whether one of the item's fields named in names holds v.
func holds(it item, names []string, v string) bool {
	for _, name := range names {
		if raw, ok := it.fields[name]; ok && sameValue(raw, v) {
			return true
		}
	}
	return false
}

// sameValue reports whether a field's JSON value is v: a string equal to it, or a number or
// boolean written as it.
func sameValue(raw json.RawMessage, v string) bool {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s == v
	}
	return strings.TrimSpace(string(raw)) == v
}

// Write applies writes in order: create is a POST to the collection with the payload and the
// external reference in ref_field; update a PATCH of the item with the payload, or, for PUT,
// the item read, the payload laid over it and the whole sent back; delete a DELETE of the item,
// where 404 means already deleted.
func (t *Target) Write(ctx context.Context, entity string, writes []connector.Write) ([]connector.Result, error) {
	e, err := t.entity(entity)
	if err != nil {
		return nil, err
	}
	if t.readOnly && len(writes) > 0 {
		return nil, fmt.Errorf("writing %d %s records: the target is opened for a test, which writes nothing", len(writes), entity)
	}
	results := make([]connector.Result, len(writes))
	for i, w := range writes {
		var res connector.Result
		var err error
		switch w.Op {
		case connector.WriteCreate:
			res, err = t.create(ctx, entity, e, w)
		case connector.WriteUpdate:
			res, err = t.update(ctx, entity, e, w)
		case connector.WriteDelete:
			res, err = t.delete(ctx, entity, e, w)
		default:
			res.Err = fmt.Errorf("record %q: the rest target does not know the write %q", w.Key, w.Op)
		}
		if err != nil {
			return nil, fmt.Errorf("writing %s record %q: %w", entity, w.Key, err)
		}
		results[i] = res
	}
	return results, nil
}

func (t *Target) create(ctx context.Context, entity string, e Entity, w connector.Write) (connector.Result, error) {
	fields, refusal := payloadFields(w)
	if refusal != nil {
		return connector.Result{Err: refusal}, nil
	}
	ref, _ := json.Marshal(w.Key)
	fields[e.RefField] = ref
	addDocument(e, w, fields)
	body, err := json.Marshal(fields)
	if err != nil {
		return connector.Result{}, fmt.Errorf("encoding the record: %w", err)
	}
	a, err := t.send(ctx, http.MethodPost, e.Path, nil, body)
	if err != nil {
		return connector.Result{}, err
	}
	if r, err, done := t.settle(a, w); done {
		return r, err
	}
	if id, ok := createdID(a, e.IDField); ok {
		return connector.Result{TargetID: id}, nil
	}
	return connector.Result{}, fmt.Errorf("%s answered %d without the new record's id: no %q field in a JSON answer, no Location header; set settings.entities.%s.id_field",
		a.what, a.status, e.IDField, entity)
}

// addDocument adds to a document's fields the ids of what it refers to and the state it is
// to be taken to, in the fields the entity's settings name.
func addDocument(e Entity, w connector.Write, fields map[string]json.RawMessage) {
	if e.RefsField != "" && len(w.Refs) > 0 {
		fields[e.RefsField], _ = json.Marshal(w.Refs) // a map of strings always encodes
	}
	if e.StateField != "" && w.State != "" {
		fields[e.StateField], _ = json.Marshal(w.State)
	}
}

// createdID reads a created record's id from the answer, or from its Location header when
// the answer has no body.
func createdID(a *answer, idField string) (string, bool) {
	if len(bytes.TrimSpace(a.body)) > 0 && a.isJSON() {
		if it, err := readItem(a.body, idField); err == nil {
			return it.id, true
		}
	}
	if loc := a.header.Get("Location"); loc != "" {
		// The last segment as sent, so that an escaped '/' in the id stays in it.
		if u, err := url.Parse(loc); err == nil {
			if last := path.Base(u.EscapedPath()); last != "/" && last != "." {
				if id, err := url.PathUnescape(last); err == nil && id != "" {
					return id, true
				}
			}
		}
	}
	return "", false
}

func (t *Target) update(ctx context.Context, entity string, e Entity, w connector.Write) (connector.Result, error) {
	fields, refusal := payloadFields(w)
	if refusal != nil {
		return connector.Result{Err: refusal}, nil
	}
	itemPath := itemPath(e, w.ID)
	if e.UpdateMethod == http.MethodPut {
		// PUT replaces the record: read it and lay the fields to change over it, so that the
		// fields the write leaves alone stay as they are.
		a, err := t.send(ctx, http.MethodGet, itemPath, nil, nil)
		if err != nil {
			return connector.Result{}, err
		}
		if r, err, done := t.settle(a, w); done {
			return r, err
		}
		current := map[string]json.RawMessage{}
		if err := a.decode(&current); err != nil {
			return connector.Result{}, err
		}
		maps.Copy(current, fields)
		fields = current
	}
	addDocument(e, w, fields)
	body, err := json.Marshal(fields)
	if err != nil {
		return connector.Result{}, fmt.Errorf("encoding the record: %w", err)
	}
	a, err := t.send(ctx, e.UpdateMethod, itemPath, nil, body)
	if err != nil {
		return connector.Result{}, err
	}
	if r, err, done := t.settle(a, w); done {
		return r, err
	}
	return connector.Result{TargetID: w.ID}, nil
}

func (t *Target) delete(ctx context.Context, entity string, e Entity, w connector.Write) (connector.Result, error) {
	if !e.Delete {
		return connector.Result{Err: fmt.Errorf("record %q: deleting %s records is off (settings.entities.%s.delete)", w.Key, entity, entity)}, nil
	}
	a, err := t.send(ctx, http.MethodDelete, itemPath(e, w.ID), nil, nil)
	if err != nil {
		return connector.Result{}, err
	}
	if a.status == http.StatusNotFound || a.status == http.StatusGone {
		return connector.Result{TargetID: w.ID}, nil
	}
	if r, err, done := t.settle(a, w); done {
		return r, err
	}
	return connector.Result{TargetID: w.ID}, nil
}

// settle handles an answer that is not 2xx: done, with the record's refusal in the result
// or the call's error.
func (t *Target) settle(a *answer, w connector.Write) (connector.Result, error, bool) {
	if a.status >= 200 && a.status <= 299 {
		// A page where the API's JSON should be is a sign-in page or a proxy's, not the API
		// having done the write.
		if a.isHTML() {
			return connector.Result{}, a.decode(new(any)), true
		}
		return connector.Result{}, nil, false
	}
	if a.refusal() {
		return connector.Result{Err: fmt.Errorf("record %q: %w", w.Key, a.problem())}, nil, true
	}
	return connector.Result{}, a.problem(), true
}

// payloadFields decodes a write's payload, or refuses the record when it is not an object.
func payloadFields(w connector.Write) (map[string]json.RawMessage, error) {
	fields := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(w.Payload)) == 0 {
		return fields, nil
	}
	if err := json.Unmarshal(w.Payload, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("record %q: the payload is not a JSON object; the rest target sends objects", w.Key)
	}
	return fields, nil
}

func itemPath(e Entity, id string) string {
	return strings.Replace(e.ItemPath, idPlaceholder, url.PathEscape(id), 1)
}

// Check looks every entity's collection up by an external reference no record has, which
// proves that the API answers at each path and takes the credentials, and writes nothing.
func (t *Target) Check(ctx context.Context) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(t.s.Entities)) {
		e := t.s.Entities[name]
		if _, err := t.list(ctx, name, e, url.Values{e.Lookup[connector.FieldExternalRef]: {checkProbe}}); err != nil {
			errs = append(errs, fmt.Errorf("entity %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Close closes the target's idle connections.
func (t *Target) Close() error {
	t.closeIdle()
	return nil
}

func (t *Target) entity(name string) (Entity, error) {
	e, ok := t.s.Entities[name]
	if !ok {
		return Entity{}, fmt.Errorf("the endpoint serves no %q entity: settings.entities has %s", name, strings.Join(slices.Sorted(maps.Keys(t.s.Entities)), ", "))
	}
	return e, nil
}
