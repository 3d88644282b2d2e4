package sql

import (
	"encoding/json"
	"slices"
	"strings"
)

// interner hands out one string per distinct name in a push: a batch from one mapping repeats
// the same few field names on every record, so each is allocated once, not once per record.
type interner map[string]string

func (in interner) get(b []byte) string {
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	in[s] = s
	return s
}

// splitObject splits a JSON object into its members, each value kept as the raw JSON it came
// as. It is the hot path of every push (every record, every field), so it validates once and
// then only finds boundaries, instead of decoding into a map through reflection. As with
// encoding/json, the last of two members with one name wins. Members come back sorted by name;
// sizeHint is the number of members expected.
func splitObject(data []byte, names interner, sizeHint int) ([]field, bool) {
	if !json.Valid(data) {
		return nil, false
	}
	s := objectScanner{data: data}
	s.skipSpace()
	if !s.consume('{') {
		return nil, false
	}
	fields := make([]field, 0, sizeHint)
	s.skipSpace()
	if !s.consume('}') {
		for {
			s.skipSpace()
			start := s.pos
			s.skipString()
			name := unquoteName(data[start:s.pos], names)
			s.skipSpace()
			s.consume(':')
			s.skipSpace()
			start = s.pos
			s.skipValue()
			fields = append(fields, field{name: name, value: data[start:s.pos]})
			s.skipSpace()
			if !s.consume(',') {
				break
			}
		}
	}
	slices.SortStableFunc(fields, func(a, b field) int { return strings.Compare(a.name, b.name) })
	return lastOfEachName(fields), true
}

// lastOfEachName drops every member that a later one of the same name overrides; fields are
// sorted stably, so the later member comes later.
func lastOfEachName(fields []field) []field {
	kept := fields[:0]
	for i, f := range fields {
		if i+1 < len(fields) && fields[i+1].name == f.name {
			continue
		}
		kept = append(kept, f)
	}
	return kept
}

// unquoteName decodes a member name, interned when it has no escapes (nearly always).
func unquoteName(raw []byte, names interner) string {
	if inner := raw[1 : len(raw)-1]; !slices.Contains(inner, '\\') {
		return names.get(inner)
	}
	return unquote(raw)
}

// unquote decodes a JSON string; most names and values have no escapes and need no decoder.
func unquote(raw []byte) string {
	inner := raw[1 : len(raw)-1]
	if !slices.Contains(inner, '\\') {
		return string(inner)
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return string(inner)
	}
	return s
}

// objectScanner walks JSON that json.Valid accepted, so it only looks for boundaries.
type objectScanner struct {
	data []byte
	pos  int
}

func (s *objectScanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

func (s *objectScanner) consume(c byte) bool {
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// skipString moves past the string that starts at pos.
func (s *objectScanner) skipString() {
	s.pos++ // opening quote
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case '\\':
			s.pos += 2
		case '"':
			s.pos++
			return
		default:
			s.pos++
		}
	}
}

// skipValue moves past the value that starts at pos.
func (s *objectScanner) skipValue() {
	switch s.data[s.pos] {
	case '"':
		s.skipString()
	case '{', '[':
		depth := 0
		for s.pos < len(s.data) {
			switch s.data[s.pos] {
			case '"':
				s.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.pos++
			if depth == 0 {
				return
			}
		}
	default: // number, true, false, null
		for s.pos < len(s.data) {
			switch s.data[s.pos] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return
			}
			s.pos++
		}
	}
}
