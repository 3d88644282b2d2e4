package rest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// cursorPrefix starts every cursor of the rest source, with the version of its format: a
// cursor of another version, or of another connector, is refused by name.
const cursorPrefix = "rest1."

// position is where a Read goes on from: the records changed at or after At, but for those
// of Keys that changed at exactly At, which were read already.
type position struct {
	// Started is false before the first record is read: nothing is filtered.
	Started bool `json:"-"`
	// Since is At as the API wrote it, sent back as since_param.
	Since string `json:"s"`
	// At is a time in Unix microseconds.
	At   int64    `json:"t"`
	Keys []string `json:"k,omitempty"`
	// Entity and Field (the changed field) are what the cursor was made reading, so that a
	// cursor is never taken for another entity, or after the changed field was changed.
	Entity string `json:"e"`
	Field  string `json:"f"`
}

// encodeCursor writes pos as an opaque cursor: the prefix and the position as base64url JSON.
// A cursor before any record was read is the empty cursor.
func encodeCursor(entity, field string, pos position) (string, error) {
	if !pos.Started {
		return "", nil
	}
	pos.Entity, pos.Field = entity, field
	b, err := json.Marshal(pos)
	if err != nil {
		return "", fmt.Errorf("writing the cursor: %w", err)
	}
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// decodeCursor reads a cursor of entity, made reading the changed field field; the empty
// cursor reads from the beginning.
func decodeCursor(cursor, entity, field string) (position, error) {
	if cursor == "" {
		return position{}, nil
	}
	shown := cursor
	if len(shown) > 40 {
		shown = shown[:40] + "…"
	}
	encoded, ok := strings.CutPrefix(cursor, cursorPrefix)
	var pos position
	if ok {
		b, err := base64.RawURLEncoding.DecodeString(encoded)
		ok = err == nil && json.Unmarshal(b, &pos) == nil && pos.Entity != "" && pos.Field != ""
	}
	if !ok {
		return position{}, fmt.Errorf("the cursor %q is not one the rest source (format %s) wrote; reset the flow's cursor to read every record again", shown, strings.TrimSuffix(cursorPrefix, "."))
	}
	switch {
	case pos.Entity != entity:
		return position{}, fmt.Errorf("the cursor was written reading %s records, not %s; reset the flow's cursor to read every record again", pos.Entity, entity)
	case pos.Field != field:
		return position{}, fmt.Errorf("the cursor was written reading the changed field %s, and the settings now name %s; reset the flow's cursor to read every record again", pos.Field, field)
	case pos.Since == "":
		return position{}, errors.New("the cursor holds no time; reset the flow's cursor to read every record again")
	}
	pos.Started = true
	return pos, nil
}
