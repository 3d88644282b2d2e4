package envelope_test

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/envelope"
)

var seed = flag.Uint64("seed", 0, "seed of TestCheckRecordAgreesOnRandomRecords (0: from the clock)")

// checkAgrees fails t unless CheckRecord's fast path accepts record exactly
// when its slow path does, and CheckRecord says what the slow path says.
func checkAgrees(t *testing.T, record []byte) {
	t.Helper()
	fast, slow := envelope.ValidRecord(record), envelope.CheckRecordSlow(record)
	if fast != (slow == nil) {
		t.Errorf("record %q: the fast path says valid=%v, the slow path %v", record, fast, slow)
		return
	}
	if got := envelope.CheckRecord(record); (got == nil) != (slow == nil) || got != nil && got.Error() != slow.Error() {
		t.Errorf("record %q: CheckRecord = %v, the slow path %v", record, got, slow)
	}
}

// nest wraps v in n levels of containers, the outermost an object.
func nest(n int, open, close, v string) string {
	return `{"a":` + strings.Repeat(open, n-1) + v + strings.Repeat(close, n-1) + `}`
}

// trickyRecords are where a hand-written JSON check goes wrong most easily.
var trickyRecords = []string{
	// Every escape, and bad ones.
	`{"a":"\" \\ \/ \b \f \n \r \t"}`,
	`{"a":"\u0000"}`,
	`{"a":"\u00e9\u20AC\uFFFF\uffff\u0041"}`,
	`{"\u0000\n":1}`,
	`{"a":"\x"}`,
	`{"a":"\'"}`,
	`{"a":"\v"}`, `{"a":"\0"}`, `{"a":"\a"}`, `{"a":"\e"}`, `{"a":"\ "}`, "{\"a\":\"\\\n\"}",
	`{"a":"\U0041"}`,
	`{"a":"\u12"}`,
	`{"a":"\u12G4"}`,
	`{"a":"\u`,
	`{"a":"\`,
	`{"a":"\\"}`,
	`{"a":"\\\"}`,
	`{"a\"":"\\ud800"}`,
	`{"a":"\\uD800"}`,
	// Surrogates: pairs, split pairs and lone halves.
	`{"a":"\uD83D\uDE00"}`,
	`{"a":"\ud83d\ude00"}`,
	`{"a":"\uDBFF\uDFFF\uD800\uDC00"}`,
	`{"a":"\uD7FF\uE000"}`,
	`{"a":"\uD800\uDC00"}`, `{"a":"\uDBFF\uDFFF"}`, `{"a":"\uD800\uDBFF"}`, `{"a":"\uDBFF\uE000"}`,
	`{"a":"\uDC00"}`, `{"a":"\uDFFF"}`, `{"a":"\uD800"}`, `{"a":"\uDBFF"}`,
	`{"a":"\uD83Dx\uDE00"}`,
	`{"a":"\uD83D","b":"\uDE00"}`,
	`{"a":"x\uD83D"}`,
	`{"a":"\uD83D`,
	`{"a":"\uD83D\`,
	`{"a":"\uD83D\u`,
	`{"a":"\uD83D\uDE`,
	`{"a":"\uD83D\uDE0"}`,
	`{"a":"\uD83D\n"}`,
	`{"a":"\uD83D\u0041"}`,
	`{"a":"\uD83D\uZZZZ"}`,
	`{"a":"\uDE00"}`,
	`{"a":"\uDE00\uD83D"}`,
	`{"a":"\uD83D\uD83D\uDE00"}`,
	`{"a":"\uD83D\uDE00\uDE00"}`,
	`{"\uD800":1}`,
	`{"\uD800\uDC00":1}`,
	// Numbers.
	`{"n":0}`, `{"n":-0}`, `{"n":0.0}`, `{"n":-0.0e-0}`, `{"n":0e0}`, `{"n":1E-5}`, `{"n":1e-0005}`,
	`{"n":1e2}`, `{"n":1E+2}`, `{"n":0.1e1}`, `{"n":1e400}`, `{"n":1e0400}`, `{"n":-1e400}`, `{"n":1e-400}`,
	`{"n":5e-324}`, `{"n":1e-324}`, `{"n":1.7976931348623157e308}`, `{"n":1.7976931348623159e308}`,
	`{"n":01}`, `{"n":-01}`, `{"n":00}`, `{"n":1.}`, `{"n":.5}`, `{"n":-.5}`, `{"n":-}`, `{"n":-a}`, `{"n":+1}`,
	`{"n":1e}`, `{"n":1e+}`, `{"n":1.5.3}`, `{"n":1-2}`, `{"n":0x10}`, `{"n":1_000}`, `{"n":-}`, `{"n":1`, `{"n":-`,
	`{"n":999999999999999999}`, `{"n":-999999999999999999}`,
	`{"n":9223372036854775807}`, `{"n":9223372036854775808}`,
	`{"n":-9223372036854775808}`, `{"n":-9223372036854775809}`,
	`{"n":12345678901234567890}`, `{"n":10000000000000000000}`, `{"n":-10000000000000000000}`,
	`{"n":100000000000000000000}`, `{"n":123456789012345678901234567890}`,
	`{"n":0.1}`, `{"n":19.99}`, `{"n":19.990}`, `{"n":123456789012345.6}`, `{"n":1234567890123456.7}`,
	`{"n":0.30000000000000004}`, `{"n":0.12345678901234567}`, `{"n":0.1234567890123456789}`,
	`{"n":1.0000000000000000000000000000000000000000000}`, `{"n":1.000000000000000000}`,
	`{"n":0.000000000000000000001}`, `{"n":100000000000000000000000000000.0}`, `{"n":1.50000000000000000}`,
	`{"n":1e-99999999}`, `{"n":[1,2.5,-3e3]}`,
	// Whitespace, literals and structure.
	" \t\r\n{\t\"a\"\r:\n[ 1 , 2 ,true,false , null ]\t,\"b\" : { } }\n\t ",
	"\f{}", "{}\v", "\u00a0{}", "{}\u00a0",
	`{}`, `{ }`, `{"a":{}}`, `{"a":[]}`, `{"a":[[],{}]}`, `{"a":1,"a":2}`,
	`{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":1 "b":2}`, `{"a":[1,]}`, `{"a":[,1]}`, `{"a":[1 2]}`,
	`{1:2}`, `{'a':1}`, `{a:1}`, `{"a":"x"1}`, `{"a"::1}`, `{"a":[}`, `{"a":{]}`, `{"a":[1}]`,
	`{"a":tru}`, `{"a":True}`, `{"a":nulll}`, `{"a":falsey}`, `{"a":nul`, `{"a":t`,
	`{"a":NaN}`, `{"a":Infinity}`, `{"a":-Infinity}`,
	// Trailing garbage and other top values.
	`{}x`, `{} {}`, `{}{}`, `{}]`, `{},`, `{"a":1}}`, `{}/`, `{} // note`,
	`[]`, `[{}]`, `"s"`, `1`, `-1`, `true`, `false`, `null`, `x`,
	``, ` `, "\n", " \t\r\n ", "\xef\xbb\xbf{}", "\xef\xbb\xbf",
	// Depth, also in strings where brackets do not count.
	nest(64, "[", "]", "1"), nest(65, "[", "]", "1"), nest(64, "[", "]", ""), nest(65, "[", "]", ""),
	nest(64, `{"b":`, "}", "1"), nest(65, `{"b":`, "}", "1"), nest(64, `[{"b":`, "}]", "1"), nest(200, "[", "]", ""),
	`{"a":"` + strings.Repeat("[", 100) + `"}`, `{"a":"` + strings.Repeat("{", 100) + `"}`,
	`{"a":"\"` + strings.Repeat("[", 100) + `"}`, `{"a":"\\"` + strings.Repeat("[", 100) + `}`,
	nest(64, "[", "]", `"`+strings.Repeat("[", 10)+`"`),
	// UTF-8, inside strings and out.
	"{\"a\":\"Grüße 東京 🙂\"}", "{\"Grüße\":1}", "{\"a\":\"\xef\xbf\xbd\"}",
	"{\"a\":\"\xff\"}", "{\"a\":\"\x80\"}", "{\"a\":1}\xff", "\xff{}", "{\"a\"\xff:1}", "{\"a\":\xc3\xa9}",
	"{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xc1\xbf\"}", "{\"a\":\"\xe0\x80\xaf\"}", "{\"a\":\"\xf0\x80\x80\xaf\"}",
	"{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xed\xbf\xbf\"}", "{\"a\":\"\xed\x9f\xbf\"}", "{\"a\":\"\xee\x80\x80\"}",
	"{\"a\":\"\xf4\x8f\xbf\xbf\"}", "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xf5\x80\x80\x80\"}",
	"{\"a\":\"\xe2\x82\"}", "{\"a\":\"\xe2\x82", "{\"a\":\"\xe2", "{\"a\":\"\xf0\x9f\x99\"}",
	// Control characters raw inside strings, DEL is fine.
	"{\"a\":\"\x00\"}", "{\"a\":\"\x1f\"}", "{\"a\":\"\t\"}", "{\"a\":\"\n\"}", "{\"a\":\"\r\"}", "{\"\x01\":1}",
	"{\"a\":\"\x7f\"}", "{\"a\":1}\x00", "\x00{}",
}

// TestCheckRecordAgreesOnTrickyRecords: the fast path accepts exactly what
// the slow path accepts.
func TestCheckRecordAgreesOnTrickyRecords(t *testing.T) {
	for _, r := range trickyRecords {
		checkAgrees(t, []byte(r))
	}
	// Records at the size limit, not among the fuzz seeds: the fuzzer
	// would spend its time shrinking them.
	checkAgrees(t, []byte(`{"a":"`+strings.Repeat("x", envelope.MaxPayloadBytes-8)+`"}`))
	checkAgrees(t, []byte(`{"a":"`+strings.Repeat("x", envelope.MaxPayloadBytes-7)+`"}`))
}

// TestCheckRecordAgreesOnRandomRecords: random JSON-ish records, most of
// them valid and then mutated, get the same verdict from both paths. Rerun
// a failure with -seed.
func TestCheckRecordAgreesOnRandomRecords(t *testing.T) {
	s := *seed
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d", s)
	r := rand.New(rand.NewPCG(s, s))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		record := randomRecord(r)
		checkAgrees(t, record)
		if t.Failed() {
			t.Fatalf("seed %d: rerun with -seed %d", s, s)
		}
	}
}

// FuzzCheckRecordAgrees: the fast path accepts exactly what the slow path
// accepts. Seeds are trickyRecords, FuzzCheckRecord's corpus and those in
// testdata/fuzz/FuzzCheckRecordAgrees.
func FuzzCheckRecordAgrees(f *testing.F) {
	for _, r := range trickyRecords {
		f.Add([]byte(r))
	}
	for _, r := range corpus(f, "FuzzCheckRecord") {
		f.Add(r)
	}
	f.Add(order)
	f.Fuzz(checkAgrees)
}

// corpus reads the records of a fuzz target's seed corpus.
func corpus(f *testing.F, target string) [][]byte {
	paths, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed corpus for %s: %v", target, err)
	}
	var records [][]byte
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		header, value, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		value, ok := strings.CutPrefix(value, "[]byte(")
		value, ok2 := strings.CutSuffix(value, ")")
		record, err := strconv.Unquote(value)
		if header != "go test fuzz v1" || !ok || !ok2 || err != nil {
			f.Fatalf("%s is not a fuzz corpus file of one []byte", path)
		}
		records = append(records, []byte(record))
	}
	return records
}

// randomRecord makes a JSON object of random values, and then a quarter of
// the time leaves it so and otherwise breaks it in one to three places.
func randomRecord(r *rand.Rand) []byte {
	var b bytes.Buffer
	maxDepth := 4
	if r.IntN(10) == 0 {
		maxDepth = 60 + r.IntN(8)
	}
	randomObject(r, &b, 1, maxDepth)
	p := b.Bytes()
	if r.IntN(4) == 0 {
		return p
	}
	for range 1 + r.IntN(3) {
		p = mutate(r, p)
	}
	return p
}

func randomValue(r *rand.Rand, b *bytes.Buffer, depth, maxDepth int) {
	space(r, b)
	deeper := depth < maxDepth
	n := r.IntN(10)
	if maxDepth > 10 && deeper {
		// A deep record: containers all the way down.
		n = r.IntN(2)
	}
	switch {
	case n == 0 && deeper:
		randomObject(r, b, depth+1, maxDepth)
	case n == 1 && deeper:
		b.WriteByte('[')
		if maxDepth > 10 {
			randomValue(r, b, depth+1, maxDepth)
		} else {
			for i := range r.IntN(4) {
				if i > 0 {
					b.WriteByte(',')
				}
				randomValue(r, b, depth+1, maxDepth)
			}
		}
		space(r, b)
		b.WriteByte(']')
	case n <= 4:
		randomString(r, b)
	case n <= 8:
		randomNumber(r, b)
	default:
		b.WriteString([]string{"true", "false", "null"}[r.IntN(3)])
	}
	space(r, b)
}

func randomObject(r *rand.Rand, b *bytes.Buffer, depth, maxDepth int) {
	b.WriteByte('{')
	fields := r.IntN(5)
	if maxDepth > 10 {
		fields = 1
	}
	for i := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		space(r, b)
		if maxDepth > 10 {
			// Deep records get plain names, so that many of them are valid.
			b.WriteString(`"k"`)
		} else {
			randomString(r, b)
		}
		space(r, b)
		b.WriteByte(':')
		randomValue(r, b, depth, maxDepth)
	}
	space(r, b)
	b.WriteByte('}')
}

func space(r *rand.Rand, b *bytes.Buffer) {
	if r.IntN(4) == 0 {
		for range 1 + r.IntN(3) {
			b.WriteByte(" \t\r\n"[r.IntN(4)])
		}
	}
}

// stringParts are what random strings are made of: text, every escape,
// surrogate halves and pairs, and characters of one to four bytes.
var stringParts = []string{
	"a", "id", "SO-1001", " ", "[", "{", "]", "}", ",", ":", "1", "-",
	`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u0000`, `\u00e9`, `\u20AC`, `\uFFFF`,
	`\uD83D`, `\uDE00`, `\uD83D\uDE00`, `\udbff\udfff`, `\\uD800`,
	"é", "€", "🙂", "\u2028", "\x7f",
}

func randomString(r *rand.Rand, b *bytes.Buffer) {
	b.WriteByte('"')
	for range r.IntN(6) {
		if r.IntN(20) == 0 {
			// Any escaped code unit, surrogates included.
			b.WriteString(`\u` + strconv.FormatUint(uint64(0x10000+r.IntN(0x10000)), 16)[1:])
			continue
		}
		b.WriteString(stringParts[r.IntN(len(stringParts))])
	}
	b.WriteByte('"')
}

// numberParts are numbers at the edges of what is exact.
var numberParts = []string{
	"0", "-0", "0.0", "3", "19.99", "1e2", "1E-5", "1e400", "5e-324",
	"9223372036854775807", "9223372036854775808", "-9223372036854775808",
	"999999999999999999", "12345678901234567890", "100000000000000000000",
	"0.1", "0.30000000000000004", "0.12345678901234567890", "123456789012345.6",
}

// randomNumber writes a number from numberParts or one of random shape.
func randomNumber(r *rand.Rand, b *bytes.Buffer) {
	if r.IntN(2) == 0 {
		b.WriteString(numberParts[r.IntN(len(numberParts))])
		return
	}
	digits := func(n int) {
		for range n {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
	}
	if r.IntN(3) == 0 {
		b.WriteByte('-')
	}
	if r.IntN(4) == 0 {
		b.WriteByte('0')
	} else {
		b.WriteByte(byte('1' + r.IntN(9)))
		digits(r.IntN(22))
	}
	if r.IntN(2) == 0 {
		b.WriteByte('.')
		digits(1 + r.IntN(20))
	}
	if r.IntN(4) == 0 {
		b.WriteString([]string{"e", "E", "e+", "e-", "E-"}[r.IntN(5)])
		digits(1 + r.IntN(4))
	}
}

// mutations are inserted into records to break them: JSON's structure, bad
// escapes and numbers, and bytes that are not UTF-8 or are control
// characters.
var mutations = []string{
	`"`, `\`, `{`, `}`, `[`, `]`, `,`, `:`, ` `, "\t", "\n", "\f", "0", "-", ".", "e", "+",
	`\u`, `\uD800`, `\uDC00`, `\x`, "01", "1.", ".5", "1e400", "NaN", "tru", "null",
	"\x00", "\x1f", "\x7f", "\x80", "\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "\xef\xbb\xbf",
}

func mutate(r *rand.Rand, p []byte) []byte {
	if len(p) == 0 {
		return []byte(mutations[r.IntN(len(mutations))])
	}
	i := r.IntN(len(p))
	switch r.IntN(5) {
	case 0: // replace one byte
		p[i] = mutations[r.IntN(len(mutations))][0]
		return p
	case 1: // delete a few bytes
		return append(p[:i:i], p[min(len(p), i+1+r.IntN(4)):]...)
	case 2: // cut the end off
		return p[:i]
	case 3: // repeat a piece
		j := min(len(p), i+1+r.IntN(8))
		return append(p[:j:j], p[i:]...)
	default: // insert a mutation
		return append(append(p[:i:i], mutations[r.IntN(len(mutations))]...), p[i:]...)
	}
}

// order is a typical record: an order of about 1 KiB.
var order = []byte(`{
  "id": "SO-2024-001234",
  "status": "paid",
  "created_at": "2024-05-17T09:31:12Z",
  "currency": "EUR",
  "total": 87.46,
  "tax": 13.96,
  "paid": true,
  "coupon": null,
  "customer": {
    "id": "C-88123",
    "name": "Jörg Müller",
    "email": "joerg.mueller@example.com",
    "phone": "+49 30 1234567",
    "address": {"street": "Unter den Linden 77", "city": "Berlin", "postal_code": "10117", "country": "DE"}
  },
  "lines": [
    {"line": 1, "sku": "A-1001", "name": "Espresso cups, set of 4", "qty": 3, "price": 19.99, "discount": 0, "attributes": {"color": "white"}},
    {"line": 2, "sku": "B-2040", "name": "Coffee beans \"Crema\" 1 kg", "qty": 1, "price": 14.5, "discount": 1.5, "attributes": {"roast": "medium"}},
    {"line": 3, "sku": "C-0007", "name": "Milk jug 350 ml", "qty": 1, "price": 12.99, "discount": 0, "attributes": {}}
  ],
  "shipping": {"method": "standard", "cost": 4.95, "tracking": "JJD000390007612345"},
  "tags": ["web", "newsletter"],
  "notes": "Leave at the door, please.\nRing twice."
}`)

// BenchmarkCheckRecord checks a typical order: fast is CheckRecord, which
// takes the fast path for it, slow the four passes it took before.
func BenchmarkCheckRecord(b *testing.B) {
	for _, bm := range []struct {
		name  string
		check func([]byte) error
	}{
		{"fast", envelope.CheckRecord},
		{"slow", envelope.CheckRecordSlow},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(order)))
			for b.Loop() {
				if err := bm.check(order); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
