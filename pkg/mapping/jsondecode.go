package mapping

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds how deeply a payload may nest objects and arrays. Real records nest a few
// levels (order, lines, attributes); the bound keeps a hostile payload from costing stack and
// time in the decoder and in every later walk over the record.
const maxDepth = 512

// errTooDeep reports a payload nested deeper than maxDepth.
var errTooDeep = fmt.Errorf("nested deeper than %d levels", maxDepth)

// decodeObject decodes a JSON object into the plain values the mapping works on: nil, bool,
// int64 (a number written without fraction or exponent that fits), float64 (any other number),
// string, []any and map[string]any. It exists instead of encoding/json because it runs once per
// event: it makes one pass without reflection and produces int64 directly, where encoding/json
// would need a second pass over json.Number values. It follows encoding/json where the JSON
// text leaves room: a repeated key keeps its last value, invalid UTF-8 and lone surrogates
// become U+FFFD.
//
// Allocation is what decoding costs, so the payload is copied into one string once and every
// string without escapes is a slice of it, and members are gathered on stacks so that each map
// and slice is made at its final size. The stacks are the caller's, to reuse across records.
func decodeObject(data []byte, st *stacks) (map[string]any, error) {
	d := decoder{data: data, src: string(data), members: st.members[:0], elems: st.elems[:0]}
	obj, err := d.document()
	st.members, st.elems = keep(d.members), keep(d.elems)
	return obj, err
}

// keepStack is the largest stack kept for the next record. A stack is cleared before it is
// kept, so that it holds no values of the last record; the bound keeps that cheap and keeps
// one huge payload from pinning memory.
const keepStack = 1024

func keep[T any](stack []T) []T {
	if cap(stack) > keepStack {
		return nil
	}
	stack = stack[:cap(stack)]
	clear(stack)
	return stack[:0]
}

func (d *decoder) document() (map[string]any, error) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return nil, errors.New("payload is empty, want a JSON object")
	}
	if c := d.data[d.pos]; c != '{' {
		return nil, fmt.Errorf("payload is %s, want a JSON object", describeStart(c))
	}
	obj, err := d.object()
	if err != nil {
		return nil, err
	}
	d.skipSpace()
	if d.pos < len(d.data) {
		return nil, d.errorf("unexpected data after the JSON object")
	}
	return obj, nil
}

// describeStart names the kind of JSON value that starts with c, for the error that says a
// payload is not an object.
func describeStart(c byte) string {
	switch {
	case c == '[':
		return "a JSON array"
	case c == '"':
		return "a JSON string"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a JSON number"
	case c == 't' || c == 'f':
		return "a JSON boolean"
	case c == 'n':
		return "JSON null"
	default:
		return "not JSON"
	}
}

type decoder struct {
	data    []byte
	src     string // data as a string, to slice strings from
	pos     int
	depth   int
	members []member
	elems   []any
}

// stacks hold the members and elements of the objects and arrays being decoded, innermost
// last; they outlive one record so that their memory is reused.
type stacks struct {
	members []member
	elems   []any
}

type member struct {
	key string
	val any
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("decoding payload at byte %d: %s", d.pos, fmt.Sprintf(format, args...))
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) value() (any, error) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return nil, d.errorf("unexpected end of input")
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.string()
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	default:
		return nil, d.errorf("invalid character %q looking for a value", c)
	}
}

func (d *decoder) literal(word string) error {
	if len(d.data)-d.pos < len(word) || string(d.data[d.pos:d.pos+len(word)]) != word {
		return d.errorf("invalid literal, want %s", word)
	}
	d.pos += len(word)
	return nil
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth > maxDepth {
		return fmt.Errorf("decoding payload at byte %d: %w", d.pos, errTooDeep)
	}
	return nil
}

// object decodes an object; d.pos is at its '{'.
func (d *decoder) object() (map[string]any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.pos++
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		return map[string]any{}, nil
	}
	base := len(d.members)
	for {
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, d.errorf("want a string key in object")
		}
		key, err := d.string()
		if err != nil {
			return nil, err
		}
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, d.errorf("want ':' after object key")
		}
		d.pos++
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		d.members = append(d.members, member{key, v})
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, d.errorf("unexpected end of input in object")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			d.depth--
			obj := make(map[string]any, len(d.members)-base)
			for _, m := range d.members[base:] {
				obj[m.key] = m.val
			}
			d.members = d.members[:base]
			return obj, nil
		default:
			return nil, d.errorf("want ',' or '}' in object")
		}
	}
}

// array decodes an array; d.pos is at its '['.
func (d *decoder) array() ([]any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.pos++
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		return []any{}, nil
	}
	base := len(d.elems)
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		d.elems = append(d.elems, v)
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, d.errorf("unexpected end of input in array")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			d.depth--
			arr := make([]any, len(d.elems)-base)
			copy(arr, d.elems[base:])
			d.elems = d.elems[:base]
			return arr, nil
		default:
			return nil, d.errorf("want ',' or ']' in array")
		}
	}
}

// string decodes a string; d.pos is at its opening quote. A string without escapes, the
// common case for keys, codes and names, is a slice of the payload and costs no allocation.
func (d *decoder) string() (string, error) {
	start := d.pos + 1
	ascii := true
	for i := start; i < len(d.data); i++ {
		switch c := d.data[i]; {
		case c == '"':
			s := d.src[start:i]
			if !ascii && !utf8.ValidString(s) {
				return d.slowString(start, start)
			}
			d.pos = i + 1
			return s, nil
		case c == '\\' || c < 0x20:
			if !ascii {
				return d.slowString(start, start)
			}
			return d.slowString(start, i)
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	d.pos = len(d.data)
	return "", d.errorf("unexpected end of input in string")
}

// slowString decodes the rest of a string that holds escapes or invalid UTF-8; the bytes from
// start to i are plain ASCII.
func (d *decoder) slowString(start, i int) (string, error) {
	buf := make([]byte, i-start, i-start+16)
	copy(buf, d.data[start:i])
	for i < len(d.data) {
		c := d.data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return string(buf), nil
		case c < 0x20:
			d.pos = i
			return "", d.errorf("invalid control character %q in string", c)
		case c == '\\':
			d.pos = i
			if i+1 >= len(d.data) {
				return "", d.errorf("unexpected end of input in string escape")
			}
			var n int
			var err error
			buf, n, err = d.escape(buf, i)
			if err != nil {
				return "", err
			}
			i += n
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			i++
		default:
			r, size := utf8.DecodeRune(d.data[i:])
			buf = utf8.AppendRune(buf, r)
			i += size
		}
	}
	d.pos = len(d.data)
	return "", d.errorf("unexpected end of input in string")
}

// escape appends the character of the escape sequence at i (a backslash) and returns how many
// input bytes it took.
func (d *decoder) escape(buf []byte, i int) ([]byte, int, error) {
	switch c := d.data[i+1]; c {
	case '"', '\\', '/':
		return append(buf, c), 2, nil
	case 'b':
		return append(buf, '\b'), 2, nil
	case 'f':
		return append(buf, '\f'), 2, nil
	case 'n':
		return append(buf, '\n'), 2, nil
	case 'r':
		return append(buf, '\r'), 2, nil
	case 't':
		return append(buf, '\t'), 2, nil
	case 'u':
		r, ok := hex4(d.data[i+2:])
		if !ok {
			return nil, 0, d.errorf("invalid \\u escape in string")
		}
		if !utf16.IsSurrogate(r) {
			return utf8.AppendRune(buf, r), 6, nil
		}
		if len(d.data) >= i+12 && d.data[i+6] == '\\' && d.data[i+7] == 'u' {
			if r2, ok := hex4(d.data[i+8:]); ok {
				if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
					return utf8.AppendRune(buf, pair), 12, nil
				}
			}
		}
		return utf8.AppendRune(buf, utf8.RuneError), 6, nil
	default:
		return nil, 0, d.errorf("invalid escape %q in string", c)
	}
}

// hex4 reads the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number decodes a number per the JSON grammar. Integral text that fits in int64 becomes
// int64; everything else float64.
func (d *decoder) number() (any, error) {
	start := d.pos
	i := d.pos
	if d.data[i] == '-' {
		i++
	}
	switch {
	case i < len(d.data) && d.data[i] == '0':
		i++
	case i < len(d.data) && d.data[i] >= '1' && d.data[i] <= '9':
		i = d.digits(i)
	default:
		d.pos = i
		return nil, d.errorf("invalid number")
	}
	integral := true
	if i < len(d.data) && d.data[i] == '.' {
		integral = false
		j := d.digits(i + 1)
		if j == i+1 {
			d.pos = j
			return nil, d.errorf("invalid number: want a digit after '.'")
		}
		i = j
	}
	if i < len(d.data) && (d.data[i] == 'e' || d.data[i] == 'E') {
		integral = false
		i++
		if i < len(d.data) && (d.data[i] == '+' || d.data[i] == '-') {
			i++
		}
		j := d.digits(i)
		if j == i {
			d.pos = j
			return nil, d.errorf("invalid number: want a digit in exponent")
		}
		i = j
	}
	d.pos = i
	text := d.data[start:i]
	if integral {
		if n, ok := parseInt(text); ok {
			return n, nil
		}
	}
	f, err := strconv.ParseFloat(d.src[start:i], 64)
	if err != nil || math.IsInf(f, 0) {
		d.pos = start
		return nil, d.errorf("number %s is out of range", text)
	}
	return f, nil
}

func (d *decoder) digits(i int) int {
	for i < len(d.data) && d.data[i] >= '0' && d.data[i] <= '9' {
		i++
	}
	return i
}

// parseInt parses validated integral JSON number text, reporting false when it does not fit
// in int64.
func parseInt(text []byte) (int64, bool) {
	neg := text[0] == '-'
	if neg {
		text = text[1:]
	}
	var n uint64
	for _, c := range text {
		if n > (math.MaxUint64-9)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	switch {
	case neg && n <= 1<<63:
		return int64(-n), true
	case !neg && n <= math.MaxInt64:
		return int64(n), true
	default:
		return 0, false
	}
}
