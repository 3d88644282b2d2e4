package sqlstore

import "github.com/jackc/pgx/v5/pgtype"

// Texts is a []string sent as a text[] parameter. pgx sends a plain []string
// through its generic array, which boxes every element in an interface (an
// allocation per string); Texts hands pgx each element as a pointer that
// gives its text (textRef), which needs none. A nil Texts is NULL, an empty one the empty array, as
// for []string.
type Texts []string

// Dimensions implements pgtype.ArrayGetter.
func (a Texts) Dimensions() []pgtype.ArrayDimension {
	if a == nil {
		return nil
	}
	return []pgtype.ArrayDimension{{Length: int32(len(a)), LowerBound: 1}}
}

// Index implements pgtype.ArrayGetter.
func (a Texts) Index(i int) any { return (*textRef)(&a[i]) }

// IndexType implements pgtype.ArrayGetter.
func (a Texts) IndexType() any { return new(textRef) }

// textRef is an element of Texts. pgx encodes a pgtype.TextValuer directly; a
// plain *string it would copy into an interface first.
type textRef string

// TextValue implements pgtype.TextValuer.
func (t *textRef) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: string(*t), Valid: true}, nil
}

// Text is *s as a value of a COPY row or a parameter, read by pgx through
// pgtype.TextValuer: no allocation, where a string put in an interface costs
// one. s must not change until the statement has been sent.
func Text(s *string) any { return (*textRef)(s) }

// CopyRow is the slice a CopyIn row function fills and returns for every row.
// pgx encodes each row's values before it asks for the next, so one slice
// serves the whole COPY, and its values may point at variables the row
// function sets anew for each row.
func CopyRow(columns int) []any { return make([]any, columns) }
