package sql

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
)

// cursorPrefix starts every cursor of this source, with the version of its format: a format
// change gets a new prefix, and a cursor of the old one is then refused by name.
const cursorPrefix = "sql1."

// cursor is where a polled entity's reads go on from: the change value and key of the last
// row read. It travels as cursorPrefix and the base64url of its JSON, opaque to the platform.
type cursor struct {
	Entity string `json:"e"`
	Kind   string `json:"t"` // the change column's kind, ChangeTimestamp or ChangeSequence
	// Change is the last row's change value: Unix microseconds of a timestamp, or the
	// sequence.
	Change int64 `json:"c"`
	// Key is the last row's key as text; Int says it is an integer column's, compared as
	// a number.
	Key string `json:"k"`
	Int bool   `json:"i,omitempty"`
}

func (c cursor) String() string {
	raw, _ := json.Marshal(c) // strings, an int and a bool always encode
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(raw)
}

// keyArg is the key as a query argument of the key column's type.
func (c cursor) keyArg() any {
	if c.Int {
		if n, err := strconv.ParseInt(c.Key, 10, 64); err == nil {
			return n
		}
	}
	return c.Key
}

// parseCursor reads a cursor this source gave for p's entity; ok is false for the empty
// cursor, which reads from the beginning.
func parseCursor(s string, p poll) (c cursor, ok bool, err error) {
	if s == "" {
		return cursor{}, false, nil
	}
	notOurs := fmt.Errorf("cursor %.80q of entity %s is not a cursor of the sql source (they start %s); an empty cursor reads the entity from the beginning", s, p.Entity, cursorPrefix)
	if len(s) <= len(cursorPrefix) || s[:len(cursorPrefix)] != cursorPrefix {
		return cursor{}, false, notOurs
	}
	raw, err := base64.RawURLEncoding.DecodeString(s[len(cursorPrefix):])
	if err != nil {
		return cursor{}, false, notOurs
	}
	if err := json.Unmarshal(raw, &c); err != nil || c.Entity == "" || (c.Kind != ChangeTimestamp && c.Kind != ChangeSequence) {
		return cursor{}, false, notOurs
	}
	if c.Entity != p.Entity {
		return cursor{}, false, fmt.Errorf("cursor of entity %s was given to read entity %s; give each entity its own cursor", c.Entity, p.Entity)
	}
	if c.Kind != p.Kind {
		return cursor{}, false, fmt.Errorf("cursor of entity %s was made for a %s change column, and settings.poll.%s.change_type is now %s; read the entity from the beginning (an empty cursor) after changing the change column", p.Entity, c.Kind, p.Entity, p.Kind)
	}
	return c, true, nil
}
