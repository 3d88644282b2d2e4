package sql

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// columnKind is how a column's values become JSON, chosen once per query from the type the
// database names.
type columnKind int

const (
	kindPlain   columnKind = iota // by the Go value the driver gives
	kindNumeric                   // an exact decimal, as a JSON number
	kindJSON                      // a JSON document, as itself
	kindBinary                    // bytes, as base64
	kindDate                      // a date, as YYYY-MM-DD
)

// kindOf maps a database type name (PostgreSQL's or MariaDB's, as database/sql reports it)
// to how its values are written.
func kindOf(dbType string) columnKind {
	t := strings.ToUpper(dbType)
	t = strings.TrimPrefix(t, "UNSIGNED ")
	switch t {
	case "NUMERIC", "DECIMAL":
		return kindNumeric
	case "JSON", "JSONB":
		return kindJSON
	case "BYTEA", "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BINARY", "VARBINARY", "BIT", "GEOMETRY":
		return kindBinary
	case "DATE":
		return kindDate
	}
	return kindPlain
}

// appendJSON appends v, a value database/sql gave for a column of kind k, as JSON: numbers
// as numbers (exact decimals keep every digit), timestamps as RFC 3339 in UTC, dates as
// YYYY-MM-DD, NULL as null, JSON columns as the document, bytes as base64 (text as text).
func appendJSON(b []byte, v any, k columnKind) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, v)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case int32:
		return strconv.AppendInt(b, int64(v), 10)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case uint64:
		return strconv.AppendUint(b, v, 10)
	case float64:
		return appendFloat(b, v, 64)
	case float32:
		return appendFloat(b, float64(v), 32)
	case time.Time:
		if k == kindDate {
			return strconv.AppendQuote(b, v.Format(time.DateOnly))
		}
		return appendString(b, v.UTC().Format(time.RFC3339Nano))
	case string:
		return appendText(b, []byte(v), k)
	case []byte:
		return appendText(b, v, k)
	}
	if raw, err := json.Marshal(v); err == nil {
		return append(b, raw...)
	}
	return appendString(b, fmt.Sprint(v))
}

// appendText appends a value the driver gave as text or bytes.
func appendText(b, v []byte, k columnKind) []byte {
	switch k {
	case kindNumeric:
		if isJSONNumber(v) {
			return append(b, v...)
		}
		// NaN and infinities have no JSON number.
	case kindJSON:
		if json.Valid(v) {
			return append(b, v...)
		}
	case kindBinary:
		return appendBase64(b, v)
	}
	if !utf8.Valid(v) {
		return appendBase64(b, v)
	}
	return appendString(b, string(v))
}

func appendFloat(b []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		// JSON has no number for them; the text keeps what the column holds.
		return appendString(b, strconv.FormatFloat(f, 'g', -1, bits))
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

func appendBase64(b, v []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

func appendString(b []byte, s string) []byte {
	raw, _ := json.Marshal(s) // a string always encodes
	return append(b, raw...)
}

// isJSONNumber reports whether v is a number as JSON writes it, as a decimal column's text is
// (but for NaN and the infinities).
func isJSONNumber(v []byte) bool {
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return false
	}
	var n json.Number
	return json.Unmarshal(v, &n) == nil
}
