package mapping

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// KeyOf reads a record's key from its field path (a flow's keyField). A
// missing, null or empty field gives "" (the flow's keyless policy decides);
// a key that is an object, a list or a fractional number is an error naming
// the field.
func KeyOf(payload []byte, path string) (string, error) {
	var rec map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&rec); err != nil || rec == nil {
		return "", &PayloadError{Err: fmt.Errorf("reading key field %s: %v", path, err)}
	}
	var v any = rec
	for _, part := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return "", nil
		}
		v = m[part]
	}
	switch k := v.(type) {
	case nil:
		return "", nil
	case string:
		return strings.TrimSpace(k), nil
	case json.Number:
		if _, err := strconv.ParseInt(k.String(), 10, 64); err != nil {
			return "", fmt.Errorf("key field %s is a fractional number: a key is text or a whole number", path)
		}
		return k.String(), nil
	default:
		return "", fmt.Errorf("key field %s is a %T: a key is text or a whole number", path, v)
	}
}
