package connectortest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"

	"github.com/syncline/syncline/pkg/connector"
)

var _ connector.Target = (*Memory)(nil)

// Memory is the smallest target that keeps the contract, in memory, with ids of its own
// apart from the external reference: the suite passes on it, so a failing connector is
// failing the contract, not the suite; and the recipe's rules are tested against it. It finds
// by FieldExternalRef, and by any other field of its records (an e-mail case-insensitively),
// reads, refuses a record that has a field "refuse", and skips
// (connector.Result.Skipped) one whose field "skip" gives the reason. It is its own Reader.
type Memory struct {
	mu   sync.Mutex
	next int
	rows map[string]map[string]any // id -> field -> value
	refs map[string]string         // id -> external reference
	// docs are the Write.Refs and Write.State of the last write of each id.
	docs   map[string]docWrite
	closed bool
}

type docWrite struct {
	refs  map[string]string
	state string
}

// NewMemory returns an empty Memory target.
func NewMemory() *Memory {
	return &Memory{rows: map[string]map[string]any{}, refs: map[string]string{}, docs: map[string]docWrite{}}
}

// Find implements connector.Target.
func (m *Memory) Find(ctx context.Context, _, field string, values []string) ([]connector.Found, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("finding: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var found []connector.Found
	for id, ref := range m.refs {
		have := ref
		if field != connector.FieldExternalRef {
			f, ok := m.rows[id][field]
			if !ok || f == nil {
				continue
			}
			have = fmt.Sprint(f)
		}
		for _, v := range values {
			if v == have || field == connector.FieldEmail && strings.EqualFold(v, have) {
				row := m.rows[id]
				if st := m.docs[id].state; st != "" {
					// A document's state, as a target that reads documents gives it.
					row = maps.Clone(row)
					row[connector.FieldState] = st
				}
				fields, err := json.Marshal(row)
				if err != nil {
					return nil, err
				}
				found = append(found, connector.Found{Value: v, ID: id, Fields: fields})
			}
		}
	}
	return found, nil
}

// Write implements connector.Target.
func (m *Memory) Write(ctx context.Context, _ string, writes []connector.Write) ([]connector.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("writing: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	results := make([]connector.Result, len(writes))
	for i, w := range writes {
		if w.Op == connector.WriteDelete {
			delete(m.rows, w.ID)
			delete(m.refs, w.ID)
			delete(m.docs, w.ID)
			continue
		}
		var fields map[string]any
		if err := json.Unmarshal(w.Payload, &fields); err != nil {
			results[i].Err = fmt.Errorf("record %q: decoding the payload: %w", w.Key, err)
			continue
		}
		if _, ok := fields["refuse"]; ok {
			results[i].Err = fmt.Errorf("record %q: field refuse is not allowed", w.Key)
			continue
		}
		if why, ok := fields["skip"].(string); ok {
			results[i].Skipped = why
			continue
		}
		id := w.ID
		switch w.Op {
		case connector.WriteCreate:
			m.next++
			id = "mem-" + strconv.Itoa(m.next)
			m.rows[id], m.refs[id] = map[string]any{}, w.Key
		case connector.WriteUpdate:
			if _, ok := m.rows[id]; !ok {
				results[i].Err = fmt.Errorf("record %q: no record %s to update", w.Key, id)
				continue
			}
		}
		maps.Copy(m.rows[id], fields)
		if w.Refs != nil || w.State != "" {
			m.docs[id] = docWrite{refs: maps.Clone(w.Refs), state: w.State}
		}
		results[i].TargetID = id
	}
	return results, nil
}

// Check implements connector.Target.
func (m *Memory) Check(context.Context) error { return nil }

// Close implements connector.Target; closing twice is an error, which the suite reports.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("closed twice")
	}
	m.closed = true
	return nil
}

// Keys implements Reader.
func (m *Memory) Keys(context.Context, string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for _, ref := range m.refs {
		keys = append(keys, ref)
	}
	return keys, nil
}

// Fields implements Reader.
func (m *Memory) Fields(_ context.Context, _, key string) (map[string]string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, ref := range m.refs {
		if ref == key {
			out := map[string]string{}
			for k, v := range m.rows[id] {
				out[k] = fmt.Sprint(v)
			}
			return out, true, nil
		}
	}
	return nil, false, nil
}

// Records returns the fields of every record whose external reference is key: more than
// one is a duplicate, which no recipe may make.
func (m *Memory) Records(key string) []map[string]any {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []map[string]any
	for id, ref := range m.refs {
		if ref == key {
			out = append(out, maps.Clone(m.rows[id]))
		}
	}
	return out
}

// Document returns the Write.Refs and Write.State that the record whose external reference is
// key was last written with.
func (m *Memory) Document(key string) (refs map[string]string, state string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, ref := range m.refs {
		if ref == key {
			d := m.docs[id]
			return maps.Clone(d.refs), d.state
		}
	}
	return nil, ""
}

// Len returns how many records the target holds.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.rows)
}

// Multi is a target of several entities, each kept by a Memory of its own: what the document
// recipe needs, whose orders refer to customers and products.
type Multi map[string]*Memory

var _ connector.Target = Multi(nil)

// NewMulti returns a Multi of empty Memory targets, one per entity.
func NewMulti(entities ...string) Multi {
	m := Multi{}
	for _, e := range entities {
		m[e] = NewMemory()
	}
	return m
}

func (m Multi) of(entity string) (*Memory, error) {
	t, ok := m[entity]
	if !ok {
		return nil, fmt.Errorf("this target keeps no %s records", entity)
	}
	return t, nil
}

// Find implements connector.Target.
func (m Multi) Find(ctx context.Context, entity, field string, values []string) ([]connector.Found, error) {
	t, err := m.of(entity)
	if err != nil {
		return nil, err
	}
	return t.Find(ctx, entity, field, values)
}

// Write implements connector.Target.
func (m Multi) Write(ctx context.Context, entity string, writes []connector.Write) ([]connector.Result, error) {
	t, err := m.of(entity)
	if err != nil {
		return nil, err
	}
	return t.Write(ctx, entity, writes)
}

// Check implements connector.Target.
func (m Multi) Check(context.Context) error { return nil }

// Close implements connector.Target.
func (m Multi) Close() error { return nil }
