package envelope

import "unicode/utf8"

// validRecord says whether CheckRecord accepts p, in one pass over it and
// without allocating (but for the rare number only exactNumber can judge,
// see scanNumber). checkRecordSlow takes four passes (UTF-8, depth,
// encoding/json's syntax check, then numbers and escapes) to say precisely
// what is wrong; most records are fine, and this answers for them at a
// fraction of the cost. It must accept exactly what checkRecordSlow
// accepts: the differential tests and FuzzCheckRecordAgrees hold the two
// together, so a change to either belongs in both.
//
// It accepts a JSON text (RFC 8259) of at most MaxPayloadBytes in valid
// UTF-8 whose top value is an object, nested at most MaxPayloadDepth deep,
// with every number exact (exactNumber) and no escaped lone UTF-16
// surrogate.
func validRecord(p []byte) bool {
	if len(p) > MaxPayloadBytes {
		return false
	}
	i := skipSpace(p, 0)
	if i == len(p) || p[i] != '{' {
		return false
	}
	i, ok := scanObject(p, i, 1)
	return ok && skipSpace(p, i) == len(p)
}

// The scan functions below each read one JSON value that starts at p[i]
// and return the index just past it, and whether it is valid. Depth counts
// the top object as 1: scanObject and scanArray get their own depth,
// scanValue that of the container holding the value. Recursion is bounded
// by MaxPayloadDepth.

func scanValue(p []byte, i, depth int) (int, bool) {
	if i >= len(p) {
		return i, false
	}
	switch c := p[i]; c {
	case '{':
		if depth >= MaxPayloadDepth {
			return i, false
		}
		return scanObject(p, i, depth+1)
	case '[':
		if depth >= MaxPayloadDepth {
			return i, false
		}
		return scanArray(p, i, depth+1)
	case '"':
		return scanString(p, i)
	case 't':
		return scanLiteral(p, i, "true")
	case 'f':
		return scanLiteral(p, i, "false")
	case 'n':
		return scanLiteral(p, i, "null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return scanNumber(p, i)
		}
		return i, false
	}
}

func scanObject(p []byte, i, depth int) (int, bool) {
	i = skipSpace(p, i+1)
	if i < len(p) && p[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(p) || p[i] != '"' {
			return i, false
		}
		var ok bool
		if i, ok = scanString(p, i); !ok {
			return i, false
		}
		i = skipSpace(p, i)
		if i >= len(p) || p[i] != ':' {
			return i, false
		}
		if i, ok = scanValue(p, skipSpace(p, i+1), depth); !ok {
			return i, false
		}
		i = skipSpace(p, i)
		if i >= len(p) {
			return i, false
		}
		switch p[i] {
		case ',':
			i = skipSpace(p, i+1)
		case '}':
			return i + 1, true
		default:
			return i, false
		}
	}
}

func scanArray(p []byte, i, depth int) (int, bool) {
	i = skipSpace(p, i+1)
	if i < len(p) && p[i] == ']' {
		return i + 1, true
	}
	for {
		var ok bool
		if i, ok = scanValue(p, i, depth); !ok {
			return i, false
		}
		i = skipSpace(p, i)
		if i >= len(p) {
			return i, false
		}
		switch p[i] {
		case ',':
			i = skipSpace(p, i+1)
		case ']':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// scanString reads a string: no raw control characters, valid UTF-8, only
// JSON's escapes, and a \u escape of a UTF-16 high surrogate directly
// followed by one of a low surrogate (as checkValues demands).
func scanString(p []byte, i int) (int, bool) {
	i++
	for {
		// Most of a string is plain text: pass it in a tight loop.
		for i < len(p) && plainText[p[i]] {
			i++
		}
		if i >= len(p) {
			return i, false
		}
		switch c := p[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(p) {
				return i, false
			}
			switch p[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := hex4At(p, i+2)
				if !ok {
					return i, false
				}
				i += 6
				if r >= 0xD800 && r <= 0xDBFF {
					if i+1 >= len(p) || p[i] != '\\' || p[i+1] != 'u' {
						return i, false
					}
					if r2, ok := hex4At(p, i+2); !ok || r2 < 0xDC00 || r2 > 0xDFFF {
						return i, false
					}
					i += 6
				} else if r >= 0xDC00 && r <= 0xDFFF {
					return i, false
				}
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		case c < utf8.RuneSelf:
			i++
		default:
			// DecodeRune refuses what utf8.Valid refuses: overlong forms,
			// surrogates and truncated sequences, each as a 1-byte error.
			r, size := utf8.DecodeRune(p[i:])
			if r == utf8.RuneError && size == 1 {
				return i, false
			}
			i += size
		}
	}
}

// plainText marks the bytes a string holds as they are: printable ASCII
// other than '"' and '\\'.
var plainText = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanNumber reads a number and checks that it is exact. Integers of at
// most 18 digits fit an int64, and decimals of at most 15 digits without
// an exponent survive a float64, so exactNumber says yes to both; only the
// rest pays for asking it.
func scanNumber(p []byte, i int) (int, bool) {
	start := i
	if p[i] == '-' {
		i++
	}
	digits := 0
	switch {
	case i < len(p) && p[i] == '0':
		i++
		digits++
	case i < len(p) && p[i] >= '1' && p[i] <= '9':
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
			digits++
		}
	default:
		return i, false
	}
	fraction := i < len(p) && p[i] == '.'
	if fraction {
		i++
		n := 0
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
			n++
		}
		if n == 0 {
			return i, false
		}
		digits += n
	}
	exponent := i < len(p) && (p[i] == 'e' || p[i] == 'E')
	if exponent {
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		n := 0
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
			n++
		}
		if n == 0 {
			return i, false
		}
	}
	switch {
	case !exponent && !fraction && digits <= 18:
		return i, true
	case !exponent && fraction && digits <= 15:
		return i, true
	}
	return i, exactNumber(p[start:i])
}

func scanLiteral(p []byte, i int, lit string) (int, bool) {
	if len(p)-i < len(lit) || string(p[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(p []byte, i int) int {
	for i < len(p) {
		switch p[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// hex4At reads the four hex digits at p[i:], if they are there.
func hex4At(p []byte, i int) (rune, bool) {
	if len(p)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p[i : i+4] {
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
