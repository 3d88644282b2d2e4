package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"unicode"
	"unicode/utf8"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
)

// Limits of a change event, checked where it enters Syncline: by pkg/ingest
// and the ingest API before publishing, and by Validate for an event
// published to NATS directly. They are listed in the README.
const (
	// MaxKeyBytes bounds a source key. A key is stored in the ledger and in
	// every API log record of its event, and indexed in both.
	MaxKeyBytes = 256
	// MaxEventIDBytes bounds an event id, which travels in a header.
	MaxEventIDBytes = 128
	// MaxPayloadBytes bounds a record's JSON text. Every stage passes the
	// event on in one NATS message (1 MiB by default), with the mapped
	// record and headers besides.
	MaxPayloadBytes = 512 << 10
	// MaxPayloadDepth bounds how deeply a record nests objects and arrays.
	// Real records nest a few levels (order, lines, attributes); every walk
	// over a record costs stack and time per level.
	MaxPayloadDepth = 64
	// MaxAttributes, MaxAttributeKeyBytes and MaxAttributeValueBytes bound
	// an event's attributes.
	MaxAttributes          = 32
	MaxAttributeKeyBytes   = 128
	MaxAttributeValueBytes = 1024
)

// Errors of Validate, for errors.Is. ErrPayloadNotJSON and ErrNotJSON are
// ErrInvalidPayload too.
var (
	ErrMissingKey     = errors.New("source_key is empty")
	ErrInvalidKey     = errors.New("invalid source_key")
	ErrInvalidPayload = errors.New("invalid record")
	ErrPayloadNotJSON = fmt.Errorf("%w: not a JSON object", ErrInvalidPayload)
	// ErrNotJSON is a record that is not JSON at all.
	ErrNotJSON = fmt.Errorf("%w: not valid JSON", ErrInvalidPayload)
)

// Validate checks everything a change event must be to enter the pipeline:
// Check, a valid source key (ValidateKey), a valid record (CheckPayload)
// and attributes within their limits. pkg/ingest runs it before publishing;
// a stage that reads events other programs published to NATS runs it on
// what it decodes, so that a bad event is dead-lettered with the reason at
// the door instead of failing later for a whole batch.
func Validate(e *eventv1.Envelope) error {
	if err := Check(e); err != nil {
		return err
	}
	if err := ValidateKey(e.GetSourceKey()); err != nil {
		return fmt.Errorf("event %s: %w", e.GetEventId(), err)
	}
	if err := checkAttributes(e.GetAttributes()); err != nil {
		return fmt.Errorf("event %s (key %q): %w", e.GetEventId(), e.GetSourceKey(), err)
	}
	return CheckPayload(e)
}

// ValidateKey checks a source key: not empty, at most MaxKeyBytes, valid
// UTF-8 and free of control characters (which no system's key holds, and
// which PostgreSQL refuses in text).
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: set the record's key in the source system", ErrMissingKey)
	}
	if err := checkText("source_key", key, MaxKeyBytes); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return nil
}

// ValidateEventID checks an event id: at most MaxEventIDBytes of printable
// ASCII without spaces (a UUIDv7 is), since it travels in a NATS header.
func ValidateEventID(id string) error {
	if id == "" {
		return errors.New("envelope has no event_id: set a UUIDv7 that is unique per change in its tenant")
	}
	if len(id) > MaxEventIDBytes {
		return fmt.Errorf("event id %q… is %d bytes: use at most %d, e.g. a UUIDv7", id[:32], len(id), MaxEventIDBytes)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("event id %q has %q at byte %d: use printable ASCII without spaces, e.g. a UUIDv7", id, c, i+1)
		}
	}
	return nil
}

// checkText checks that s is valid UTF-8 without control characters, at
// most max bytes long. what names the field for the error.
func checkText(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s %q… is %d bytes long: use at most %d", what, truncate(s, 32), len(s), max)
	}
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				return fmt.Errorf("%s %q is not valid UTF-8 at byte %d: send text as UTF-8", what, s, i+1)
			}
		}
		if unicode.IsControl(r) {
			return fmt.Errorf("%s %q has the control character %U at byte %d: remove it", what, s, r, i+1)
		}
	}
	return nil
}

// truncate cuts s to at most n bytes on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func checkAttributes(attrs map[string]string) error {
	if len(attrs) > MaxAttributes {
		return fmt.Errorf("%d attributes: use at most %d", len(attrs), MaxAttributes)
	}
	for k, v := range attrs {
		if k == "" {
			return errors.New("an attribute has an empty name")
		}
		if err := checkText("attribute name", k, MaxAttributeKeyBytes); err != nil {
			return err
		}
		if err := checkText("attribute "+k, v, MaxAttributeValueBytes); err != nil {
			return err
		}
	}
	return nil
}

// CheckPayload verifies that an upsert carries a record Syncline can carry
// and map: a JSON object (RFC 8259) of at most MaxPayloadBytes, in valid
// UTF-8, nested at most MaxPayloadDepth deep, with no escaped lone UTF-16
// surrogate (which is no character) and no number the mapping would round
// (exactNumber). Deletes may carry no payload. The
// error says what is wrong and where (line, column and byte).
func CheckPayload(e *eventv1.Envelope) error {
	p := e.GetPayload()
	if e.GetOperation() == eventv1.Operation_OPERATION_DELETE && len(p) == 0 {
		return nil
	}
	if err := CheckRecord(p); err != nil {
		return fmt.Errorf("event %s (key %q): %w", e.GetEventId(), e.GetSourceKey(), err)
	}
	return nil
}

// CheckRecord is CheckPayload for a record alone.
func CheckRecord(p []byte) error {
	if validRecord(p) {
		return nil
	}
	// The slow path says what is wrong and where. Should it find nothing
	// (a bug in validRecord, which the tests look for), its verdict
	// stands, so a good record is never refused.
	return checkRecordSlow(p)
}

// checkRecordSlow is CheckRecord in four passes that say precisely what is
// wrong: UTF-8, depth, syntax (encoding/json), then numbers and escapes
// (checkValues).
func checkRecordSlow(p []byte) error {
	if len(p) > MaxPayloadBytes {
		return fmt.Errorf("%w: %d bytes, more than the %d KiB (%d bytes) a record may be: leave large documents out and send a reference (a URL or an id) instead",
			ErrInvalidPayload, len(p), MaxPayloadBytes>>10, MaxPayloadBytes)
	}
	if !utf8.Valid(p) {
		i := 0
		for i < len(p) {
			r, size := utf8.DecodeRune(p[i:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			i += size
		}
		return fmt.Errorf("%w: not valid UTF-8 at %s: send JSON as UTF-8, and binary data as base64 in a string", ErrInvalidPayload, position(p, i))
	}
	start := len(p) - len(bytes.TrimLeft(p, " \t\r\n"))
	if start == len(p) {
		return fmt.Errorf("%w: it is empty; send the record as a JSON object, e.g. {\"id\": \"1001\"}", ErrPayloadNotJSON)
	}
	if err := checkDepth(p); err != nil {
		return err
	}
	if !json.Valid(p) {
		var raw json.RawMessage
		err := json.Unmarshal(p, &raw)
		var se *json.SyntaxError
		if !errors.As(err, &se) {
			return fmt.Errorf("%w: %v", ErrNotJSON, err)
		}
		// Offset counts the bytes read up to the bad one, or all of them
		// when the text ends too early.
		at := int(se.Offset) - 1
		if se.Error() == "unexpected end of JSON input" {
			at = len(p)
		}
		hint := ""
		if at >= 0 && at < len(p) && (p[at] == 'N' || p[at] == 'I' || (p[at] == '-' && at+1 < len(p) && p[at+1] == 'I')) {
			hint = ": NaN and Infinity are not JSON numbers, send null or a string"
		}
		return fmt.Errorf("%w at %s: %s%s", ErrNotJSON, position(p, max(at, 0)), se, hint)
	}
	if p[start] != '{' {
		return fmt.Errorf("%w: it is %s; send the record as a JSON object, e.g. {\"id\": \"1001\"}", ErrPayloadNotJSON, kindOf(p[start]))
	}
	return checkValues(p[start:], start, p)
}

// checkDepth finds where p nests objects and arrays deeper than
// MaxPayloadDepth. It runs before the JSON syntax check, whose own limit
// (10,000 levels) would otherwise speak first, so it reads strings loosely.
func checkDepth(p []byte) error {
	depth, inString := 0, false
	for i := 0; i < len(p); i++ {
		c := p[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > MaxPayloadDepth {
				return fmt.Errorf("%w: objects and arrays nested deeper than %d levels at %s: flatten the record", ErrInvalidPayload, MaxPayloadDepth, position(p, i))
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// checkValues walks a valid JSON object for escaped lone surrogates, which
// a decoder would silently turn into U+FFFD, and for numbers that would lose
// digits. doc and
// off place s in the whole record for the error's position.
func checkValues(s []byte, off int, doc []byte) error {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			j := i + 1
			for j < len(s) && isNumberByte(s[j]) {
				j++
			}
			if !exactNumber(s[i:j]) {
				return fmt.Errorf("%w: the number %s at %s has more digits than Syncline carries exactly (a 64-bit integer, or the 15 to 17 significant digits of a 64-bit float): send it as a string to keep every digit",
					ErrInvalidPayload, truncate(string(s[i:j]), 64), position(doc, off+i))
			}
			i = j - 1
		case '"':
			// The text is valid JSON, so every escape is complete and the
			// string ends before the text does.
			for i++; s[i] != '"'; i++ {
				if s[i] != '\\' {
					continue
				}
				i++
				if s[i] != 'u' {
					continue
				}
				r, _ := hex4At(s, i+1)
				i += 4
				if r < 0xD800 || r > 0xDFFF {
					continue
				}
				if r < 0xDC00 && i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					if r2, _ := hex4At(s, i+3); r2 >= 0xDC00 && r2 <= 0xDFFF {
						i += 6
						continue
					}
				}
				return fmt.Errorf("%w: the escape \\u%04X at %s is half of a UTF-16 surrogate pair without its other half, which is no character: send the character itself, or both halves",
					ErrInvalidPayload, r, position(doc, off+i-5))
			}
		}
	}
	return nil
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// exactNumber says whether the mapping carries a JSON number to its output
// with its value unchanged: an integer that fits in int64, or a number whose
// value a float64 holds such that its shortest form is the same decimal.
// 19.990 and 1e2 are exact (written 19.99 and 100); 12345678901234567890123
// and 0.12345678901234567890 are not. t is valid JSON number text.
func exactNumber(t []byte) bool {
	mantissa, exp, hasExp := bytes.Cut(t, []byte{'e'})
	if !hasExp {
		mantissa, exp, hasExp = bytes.Cut(t, []byte{'E'})
	}
	digits := 0
	for _, c := range mantissa {
		if c >= '0' && c <= '9' {
			digits++
		}
	}
	switch {
	case !hasExp && bytes.IndexByte(mantissa, '.') < 0:
		if _, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return true
		}
	case !hasExp && digits <= 15:
		// Fifteen significant digits always survive a float64 (DBL_DIG).
		return true
	}
	// Bound the exact comparison's cost: a float64 has no more than 17
	// significant digits and no exponent beyond ±324, so longer text is
	// either not exact or has zeros that can be sent shorter.
	if digits > 40 || len(bytes.TrimLeft(exp, "+-")) > 3 {
		return false
	}
	f, err := strconv.ParseFloat(string(t), 64)
	if err != nil {
		return false
	}
	want, ok := new(big.Rat).SetString(string(t))
	if !ok {
		return false
	}
	got, ok := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
	return ok && got.Cmp(want) == 0
}

// position says where byte i of p is, for people: line and column (in
// characters) and byte, all from 1.
func position(p []byte, i int) string {
	i = min(i, len(p))
	line := 1 + bytes.Count(p[:i], []byte{'\n'})
	lineStart := bytes.LastIndexByte(p[:i], '\n') + 1
	col := 1 + utf8.RuneCount(p[lineStart:i])
	return fmt.Sprintf("line %d, column %d (byte %d)", line, col, i+1)
}

// kindOf names the kind of JSON value that starts with c.
func kindOf(c byte) string {
	switch {
	case c == '[':
		return "a JSON array"
	case c == '"':
		return "a JSON string"
	case c == 't' || c == 'f':
		return "a JSON boolean"
	case c == 'n':
		return "JSON null"
	}
	return "a JSON number"
}
