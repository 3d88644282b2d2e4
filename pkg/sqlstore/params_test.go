package sqlstore_test

import (
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/pkg/sqlstore/sqlstoretest"
)

// TestTextsAreTextArrays sends Texts to PostgreSQL as text[] and reads them
// back: every string as it was, nil as NULL, empty as the empty array.
func TestTextsAreTextArrays(t *testing.T) {
	db := sqlstoretest.OpenPostgres(t)
	for _, in := range []sqlstore.Texts{nil, {}, {""}, {"a"}, {"acme", "", "ørders", "with,comma", `quote"and\\back`, "{braces}", "NULL", "  spaces  "}} {
		var out []string
		var isNull bool
		if err := db.PG.QueryRow(t.Context(), "SELECT $1::text[], $1::text[] IS NULL", in).Scan(&out, &isNull); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if isNull != (in == nil) || !slices.Equal(out, []string(in)) {
			t.Errorf("sent %q (nil %t), read %q (NULL %t)", in, in == nil, out, isNull)
		}
		var n int
		if err := db.PG.QueryRow(t.Context(), "SELECT count(*) FROM unnest($1::text[]) AS u(s) WHERE s = ANY($2::text[])", in, []string(in)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != len(in) {
			t.Errorf("%q: %d elements match the same array sent as []string, want %d", in, n, len(in))
		}
	}
}

// TestTextsCostNoAllocationPerString encodes Texts the way pgx does for a
// text[] parameter: the allocations do not grow with the strings, as they
// do for a []string.
func TestTextsCostNoAllocationPerString(t *testing.T) {
	m := pgtype.NewMap()
	allocs := func(v any) float64 {
		buf := make([]byte, 0, 1<<16)
		return testing.AllocsPerRun(100, func() {
			if _, err := m.Encode(pgtype.TextArrayOID, pgtype.BinaryFormatCode, v, buf[:0]); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := make([]string, 10), make([]string, 1000)
	for i := range large {
		large[i] = "key-" + string(rune('a'+i%26))
	}
	if a, b := allocs(sqlstore.Texts(small)), allocs(sqlstore.Texts(large)); b > a {
		t.Errorf("encoding Texts of 10 strings costs %.0f allocations, of 1,000 strings %.0f: want no allocation per string", a, b)
	}
	if a, b := allocs(small), allocs(large); b <= a {
		t.Logf("[]string costs %.0f and %.0f allocations: pgx no longer boxes each string, and Texts may go", a, b)
	}
}

// TestTextCostsNoAllocation encodes a Text as pgx does a COPY value.
func TestTextCostsNoAllocation(t *testing.T) {
	m := pgtype.NewMap()
	s := "0190f5c2-7a6b-7c3d-8e9f-0a1b2c3d4e5f"
	buf := make([]byte, 0, 256)
	var out []byte
	if a := testing.AllocsPerRun(100, func() {
		var err error
		if out, err = m.Encode(pgtype.TextOID, pgtype.BinaryFormatCode, sqlstore.Text(&s), buf[:0]); err != nil {
			t.Fatal(err)
		}
	}); a > 0 {
		t.Errorf("encoding a Text costs %.0f allocations, want none", a)
	}
	if string(out) != s {
		t.Errorf("encoded %q, want %q", out, s)
	}
}
