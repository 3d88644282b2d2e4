package eventlog

import (
	"strings"
	"testing"
)

// TestCheckRecordSaysWhatIsWrongAndWhere: a corrected record must be a JSON object; a
// refusal says what it got instead, where the JSON breaks, and what to give.
func TestCheckRecordSaysWhatIsWrongAndWhere(t *testing.T) {
	for _, tc := range []struct {
		record string
		want   []string
	}{
		{`{"number":"SO-2","total":10}`, nil},
		{` {} `, nil},
		{``, []string{"record: empty", "JSON object"}},
		{`{"number":"SO-2",}`, []string{"record: not JSON at byte 18", "JSON object"}},
		{`not json`, []string{"record: not JSON at byte 2", "JSON object"}},
		{`{"number":"SO-2"`, []string{"record: not JSON", "unexpected end"}},
		{`[1,2]`, []string{"record: a JSON array, not an object"}},
		{`null`, []string{"record: a JSON null, not an object"}},
		{`"text"`, []string{"record: a JSON string, not an object"}},
		{`12`, []string{"record: a JSON number, not an object"}},
	} {
		err := checkRecord(tc.record)
		if tc.want == nil {
			if err != nil {
				t.Errorf("checkRecord(%q): %v, want it accepted", tc.record, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("checkRecord(%q) accepted it, want %q", tc.record, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("checkRecord(%q): %q, want it to say %q", tc.record, err, w)
			}
		}
	}
}
