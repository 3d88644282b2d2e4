package tryton

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/syncline/syncline/pkg/connector"
)

// categorySeparator is Tryton's tree separator: a name may not contain it, and a
// category's rec_name is its path joined with it.
const categorySeparator = " / "

// category is the canonical category record.
type category struct {
	Name   string   `json:"name"`
	Parent []string `json:"parent"`
}

// checkPath refuses a path Tryton cannot hold: an empty name or one with the separator.
func checkPath(path []string) error {
	for _, n := range path {
		if strings.TrimSpace(n) == "" {
			return refuse("category path %q has an empty name", strings.Join(path, categorySeparator))
		}
		if strings.Contains(n, categorySeparator) {
			return refuse("category name %q contains %q, Tryton's tree separator; rename it in the source or the mapping", n, categorySeparator)
		}
	}
	return nil
}

// ensureCategory finds the grouping category at path (names from the top), creating what
// is missing on the way, and returns its id. It runs under t.seq, so that two writers that
// name the same new category create it once. Names are not unique in Tryton, so the first
// match (lowest id) under a parent is the one used.
func (t *Target) ensureCategory(ctx context.Context, path []string) (int64, error) {
	if err := checkPath(path); err != nil {
		return 0, err
	}
	var parent any // nil: top level
	var id int64
	for _, name := range path {
		ids, err := t.searchIDs(ctx, "product.category", []any{[]any{"name", "=", name}, []any{"parent", "=", parent}, []any{"accounting", "=", false}})
		if err != nil {
			return 0, err
		}
		if len(ids) > 0 {
			id = ids[0]
		} else {
			values := map[string]any{"name": name}
			if parent != nil {
				values["parent"] = parent
			}
			if id, err = t.create(ctx, "product.category", values); err != nil {
				return 0, err
			}
		}
		parent = id
	}
	return id, nil
}

// writeCategory creates, updates or deletes one category. A create first looks for a
// category of that name under that parent (a product may have created it on the way) and
// takes it over, so the tree never holds the same path twice because of Syncline.
func (t *Target) writeCategory(ctx context.Context, w connector.Write) (string, error) {
	if w.Op == connector.WriteDelete {
		return w.ID, t.deleteCategory(ctx, w.ID)
	}
	var rec category
	have, err := decodePayload(w.Payload, &rec)
	if err != nil {
		return "", err
	}
	t.seq.Lock()
	defer t.seq.Unlock()
	switch w.Op {
	case connector.WriteCreate:
		if rec.Name == "" {
			return "", refuse("the category has no name")
		}
		id, err := t.ensureCategory(ctx, append(append([]string(nil), rec.Parent...), rec.Name))
		if err != nil {
			return "", err
		}
		if err := t.setNote(ctx, "product.category", id, w.Key); err != nil {
			return "", err
		}
		return idString(id), nil
	case connector.WriteUpdate:
		id, err := parseID(w.ID)
		if err != nil {
			return "", err
		}
		values := map[string]any{}
		if have["name"] {
			if err := checkPath([]string{rec.Name}); err != nil {
				return "", err
			}
			values["name"] = rec.Name
		}
		if have["parent"] {
			if len(rec.Parent) == 0 {
				values["parent"] = nil
			} else {
				p, err := t.ensureCategory(ctx, rec.Parent)
				if err != nil {
					return "", err
				}
				values["parent"] = p
			}
		}
		return w.ID, t.write(ctx, "product.category", []int64{id}, values)
	}
	return "", refuse("write %q is not create, update or delete", w.Op)
}

func (t *Target) deleteCategory(ctx context.Context, sid string) error {
	id, err := parseID(sid)
	if err != nil {
		return err
	}
	ok, err := t.exists(ctx, "product.category", id)
	if err != nil || !ok {
		return err
	}
	notes, err := t.searchIDs(ctx, "ir.note", []any{[]any{"resource", "=", "product.category," + sid}})
	if err != nil {
		return err
	}
	if len(notes) > 0 {
		if err := t.c.call(ctx, nil, "model.ir.note.delete", notes, t.ctx); err != nil {
			return err
		}
	}
	return t.c.call(ctx, nil, "model.product.category.delete", []int64{id}, t.ctx)
}

// setNote records key as the external reference of a record without identifiers: a note
// whose message is refPrefix + key. It adds none when the record has it already.
func (t *Target) setNote(ctx context.Context, model string, id int64, key string) error {
	resource := model + "," + idString(id)
	ids, err := t.searchIDs(ctx, "ir.note", []any{[]any{"resource", "=", resource}, []any{"message", "=", refPrefix + key}})
	if err != nil || len(ids) > 0 {
		return err
	}
	_, err = t.create(ctx, "ir.note", map[string]any{"resource": resource, "message": refPrefix + key})
	return err
}

type categoryRow struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	RecName string `json:"rec_name"`
}

// findCategories finds categories by external reference (their note) or by name, where the
// value is the category's path: names from the top joined by " / " ("Clothing / T-Shirts").
func (t *Target) findCategories(ctx context.Context, field string, values []string) ([]connector.Found, error) {
	byID := map[int64][]string{} // category id -> the values that matched it
	switch field {
	case connector.FieldExternalRef:
		msgs := make([]string, len(values))
		for i, v := range values {
			msgs[i] = refPrefix + v
		}
		type note struct {
			Resource string `json:"resource"`
			Message  string `json:"message"`
		}
		notes, err := searchRead[note](ctx, t, "ir.note", []any{[]any{"message", "in", msgs}, []any{"resource", "like", "product.category,%"}}, []string{"resource", "message"}, nil)
		if err != nil {
			return nil, fmt.Errorf("finding categories by external reference: %w", err)
		}
		for _, n := range notes {
			id, err := strconv.ParseInt(strings.TrimPrefix(n.Resource, "product.category,"), 10, 64)
			if err != nil {
				continue
			}
			byID[id] = append(byID[id], strings.TrimPrefix(n.Message, refPrefix))
		}
	case FieldName:
		for _, v := range values {
			ids, err := t.searchIDs(ctx, "product.category", []any{[]any{"rec_name", "=", v}})
			if err != nil {
				return nil, fmt.Errorf("finding categories by name: %w", err)
			}
			for _, id := range ids {
				byID[id] = append(byID[id], v)
			}
		}
	default:
		return nil, fmt.Errorf("finding categories by %s: the tryton target finds them by external_ref or name", field)
	}
	if len(byID) == 0 {
		return nil, nil
	}
	ids := make([]int64, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	var rows []categoryRow
	if err := t.c.call(ctx, &rows, "model.product.category.read", ids, []string{"name", "rec_name"}, t.ctx); err != nil {
		var re *RPCError
		if errors.As(err, &re) && re.Kind == "" {
			// A note whose category was deleted in Tryton: read what is left.
			return t.readLiveCategories(ctx, byID)
		}
		return nil, fmt.Errorf("reading categories: %w", err)
	}
	return categoryFounds(rows, byID), nil
}

func (t *Target) readLiveCategories(ctx context.Context, byID map[int64][]string) ([]connector.Found, error) {
	ids := make([]any, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	rows, err := searchRead[categoryRow](ctx, t, "product.category", []any{[]any{"id", "in", ids}}, []string{"name", "rec_name"}, nil)
	if err != nil {
		return nil, fmt.Errorf("reading categories: %w", err)
	}
	return categoryFounds(rows, byID), nil
}

func categoryFounds(rows []categoryRow, byID map[int64][]string) []connector.Found {
	var out []connector.Found
	for _, r := range rows {
		path := strings.Split(r.RecName, categorySeparator)
		fields := mustJSON(map[string]any{"name": r.Name, "parent": path[:len(path)-1]})
		for _, v := range byID[r.ID] {
			out = append(out, connector.Found{Value: v, ID: idString(r.ID), Fields: fields})
		}
	}
	return out
}
