package envelope_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	"github.com/syncline/syncline/pkg/envelope"
)

func valid() *eventv1.Envelope {
	return &eventv1.Envelope{SchemaVersion: envelope.SchemaVersion, EventId: envelope.NewEventID(), Tenant: "acme",
		SourceEndpoint: "shop", Entity: "order", Operation: eventv1.Operation_OPERATION_UPSERT, SourceKey: "1", Payload: []byte(`{"a":1}`)}
}

func TestDecodeChecksWhatStagesRelyOn(t *testing.T) {
	tests := []struct {
		name   string
		modify func(e *eventv1.Envelope)
		want   string
	}{
		{"valid", func(*eventv1.Envelope) {}, ""},
		{"future schema", func(e *eventv1.Envelope) { e.SchemaVersion = 2 }, "schema_version 2 is not supported"},
		{"no event id", func(e *eventv1.Envelope) { e.EventId = "" }, "no event_id"},
		{"no tenant", func(e *eventv1.Envelope) { e.Tenant = "" }, "has no tenant"},
		{"no endpoint", func(e *eventv1.Envelope) { e.SourceEndpoint = "" }, "has no source_endpoint"},
		{"no entity", func(e *eventv1.Envelope) { e.Entity = "" }, "has no entity"},
		{"no operation", func(e *eventv1.Envelope) { e.Operation = eventv1.Operation_OPERATION_UNSPECIFIED }, "has no operation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid()
			tt.modify(e)
			data, err := envelope.Encode(e)
			if err != nil {
				t.Fatal(err)
			}
			got, err := envelope.Decode(data)
			switch {
			case tt.want == "" && (err != nil || got.EventId != e.EventId):
				t.Fatalf("Decode = %v, %v", got, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Decode = %v, want an error saying %q", err, tt.want)
			}
		})
	}
	if _, err := envelope.Decode([]byte("not protobuf at all")); err == nil || !strings.Contains(err.Error(), "publish a syncline.event.v1.Envelope") {
		t.Errorf("Decode of garbage = %v, want an error saying what to publish", err)
	}
}

func TestCheckPayload(t *testing.T) {
	deep := func(n int) string { return `{"a":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}` }
	for _, tt := range []struct {
		name    string
		op      eventv1.Operation
		payload string
		want    string // "" means valid
		is      error
	}{
		{"object", eventv1.Operation_OPERATION_UPSERT, ` {"a": [1, 2]}`, "", nil},
		{"empty delete", eventv1.Operation_OPERATION_DELETE, ``, "", nil},
		{"array", eventv1.Operation_OPERATION_UPSERT, `[1]`, "not a JSON object: it is a JSON array", envelope.ErrPayloadNotJSON},
		{"empty upsert", eventv1.Operation_OPERATION_UPSERT, ``, "not a JSON object: it is empty", envelope.ErrPayloadNotJSON},
		{"truncated", eventv1.Operation_OPERATION_UPSERT, `{"a":`, "not valid JSON at line 1, column 6 (byte 6): unexpected end of JSON input", envelope.ErrInvalidPayload},
		{"bare NaN", eventv1.Operation_OPERATION_UPSERT, "{\n  \"total\": NaN}", "not valid JSON at line 2, column 12 (byte 14): invalid character 'N' looking for beginning of value: NaN and Infinity are not JSON numbers", envelope.ErrInvalidPayload},
		{"-Infinity", eventv1.Operation_OPERATION_UPSERT, `{"t":-Infinity}`, "NaN and Infinity are not JSON numbers", envelope.ErrInvalidPayload},
		{"64 deep", eventv1.Operation_OPERATION_UPSERT, deep(64), "", nil},
		{"65 deep", eventv1.Operation_OPERATION_UPSERT, deep(65), "nested deeper than 64 levels at line 1, column 69 (byte 69)", envelope.ErrInvalidPayload},
		{"10000 deep", eventv1.Operation_OPERATION_UPSERT, deep(10000), "nested deeper than 64 levels", envelope.ErrInvalidPayload},
		{"invalid UTF-8", eventv1.Operation_OPERATION_UPSERT, "{\"n\":\"Gr\xfc\xdfe\"}", "not valid UTF-8 at line 1, column 9 (byte 9)", envelope.ErrInvalidPayload},
		{"encoded U+FFFD is a character", eventv1.Operation_OPERATION_UPSERT, "{\"n\":\"\uFFFD \ufffd\"}", "", nil},
		{"surrogate pair", eventv1.Operation_OPERATION_UPSERT, `{"n":"\ud83d\ude00"}`, "", nil},
		{"lone high surrogate", eventv1.Operation_OPERATION_UPSERT, `{"n":"ab\ud83d"}`, `the escape \uD83D at line 1, column 9 (byte 9) is half of a UTF-16 surrogate pair`, envelope.ErrInvalidPayload},
		{"lone low surrogate", eventv1.Operation_OPERATION_UPSERT, `{"n":"\ude00\ud83d"}`, `the escape \uDE00`, envelope.ErrInvalidPayload},
		{"escaped quote before surrogate", eventv1.Operation_OPERATION_UPSERT, `{"n\"":"\\ud800"}`, "", nil},
		{"numbers carried exactly", eventv1.Operation_OPERATION_UPSERT, `{"a":[9223372036854775807,-9223372036854775808,19.990,0.1,1e2,1.5e-7,100000000000000000000,0.30000000000000004,-0]}`, "", nil},
		{"30-digit integer", eventv1.Operation_OPERATION_UPSERT, `{"n":123456789012345678901234567890}`, "the number 123456789012345678901234567890 at line 1, column 6 (byte 6) has more digits than Syncline carries exactly", envelope.ErrInvalidPayload},
		{"just past int64", eventv1.Operation_OPERATION_UPSERT, `{"n":[1,9223372036854775808]}`, "the number 9223372036854775808 at line 1, column 9", envelope.ErrInvalidPayload},
		{"20 decimals", eventv1.Operation_OPERATION_UPSERT, `{"n":0.12345678901234567890}`, "send it as a string", envelope.ErrInvalidPayload},
		{"huge exponent", eventv1.Operation_OPERATION_UPSERT, `{"n":1e-99999999}`, "send it as a string", envelope.ErrInvalidPayload},
		{"too large", eventv1.Operation_OPERATION_UPSERT, `{"a":"` + strings.Repeat("x", envelope.MaxPayloadBytes) + `"}`, "more than the 512 KiB (524288 bytes) a record may be", envelope.ErrInvalidPayload},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkAgrees(t, []byte(tt.payload))
			e := valid()
			e.Operation, e.Payload = tt.op, []byte(tt.payload)
			err := envelope.CheckPayload(e)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckPayload = %v, want it valid", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, tt.is) || !errors.Is(err, envelope.ErrInvalidPayload) {
				t.Fatalf("CheckPayload = %v, want %v saying %q", err, tt.is, tt.want)
			}
			if !strings.Contains(err.Error(), `(key "1")`) {
				t.Errorf("CheckPayload = %v, want the key named", err)
			}
		})
	}
}

// TestValidate: keys, event ids, names and attributes that would break a
// later stage, a store or a header are refused with the reason.
func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name   string
		modify func(e *eventv1.Envelope)
		want   string // "" means valid
		is     error
	}{
		{"valid", func(*eventv1.Envelope) {}, "", nil},
		{"key of any script", func(e *eventv1.Envelope) { e.SourceKey = "Straße-東京-🙂" }, "", nil},
		{"key of 256 bytes", func(e *eventv1.Envelope) { e.SourceKey = strings.Repeat("k", 256) }, "", nil},
		{"no key", func(e *eventv1.Envelope) { e.SourceKey = "" }, "source_key is empty", envelope.ErrMissingKey},
		{"key with NUL", func(e *eventv1.Envelope) { e.SourceKey = "10\x0001" }, `source_key "10\x0001" has the control character U+0000 at byte 3`, envelope.ErrInvalidKey},
		{"key with newline", func(e *eventv1.Envelope) { e.SourceKey = "a\nb" }, "control character U+000A", envelope.ErrInvalidKey},
		{"key with C1 control", func(e *eventv1.Envelope) { e.SourceKey = "a\u0085b" }, "control character U+0085", envelope.ErrInvalidKey},
		{"key of 257 bytes", func(e *eventv1.Envelope) { e.SourceKey = strings.Repeat("k", 257) }, "is 257 bytes long: use at most 256", envelope.ErrInvalidKey},
		{"key not UTF-8", func(e *eventv1.Envelope) { e.SourceKey = "ab\xff" }, "not valid UTF-8 at byte 3", envelope.ErrInvalidKey},
		{"event id with a space", func(e *eventv1.Envelope) { e.EventId = "a b" }, `event id "a b" has ' ' at byte 2`, nil},
		{"event id too long", func(e *eventv1.Envelope) { e.EventId = strings.Repeat("e", 129) }, "is 129 bytes: use at most 128", nil},
		{"tenant not subject-safe", func(e *eventv1.Envelope) { e.Tenant = "ac.me" }, `tenant "ac.me" has '.'`, nil},
		{"endpoint with a wildcard", func(e *eventv1.Envelope) { e.SourceEndpoint = "sh*p" }, `source_endpoint "sh*p" has '*'`, nil},
		{"entity upper case", func(e *eventv1.Envelope) { e.Entity = "Order" }, `entity "Order" has 'O'`, nil},
		{"attribute value with a control character", func(e *eventv1.Envelope) { e.Attributes = map[string]string{"source": "x\x1b"} }, "attribute source", nil},
		{"too many attributes", func(e *eventv1.Envelope) {
			e.Attributes = map[string]string{}
			for i := range 33 {
				e.Attributes[fmt.Sprint("a", i)] = "v"
			}
		}, "33 attributes: use at most 32", nil},
		{"bad record", func(e *eventv1.Envelope) { e.Payload = []byte(`{"a":NaN}`) }, "NaN", envelope.ErrInvalidPayload},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := valid()
			tt.modify(e)
			err := envelope.Validate(e)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want it valid", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("Validate = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

// TestDecodeChecksKeysAndNames: an envelope published to NATS with a key
// or a name no stage can handle fails Decode, naming it.
func TestDecodeChecksKeysAndNames(t *testing.T) {
	e := valid()
	e.SourceKey = "a\x00b"
	data, err := envelope.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := envelope.Decode(data); !errors.Is(err, envelope.ErrInvalidKey) {
		t.Errorf("Decode of a key with NUL = %v, want ErrInvalidKey", err)
	}
}

func TestEventIDsAreUniqueAndSortable(t *testing.T) {
	a, b := envelope.NewEventID(), envelope.NewEventID()
	if a == b || len(a) != 36 || a[14] != '7' {
		t.Errorf("event ids %s, %s: want two distinct UUIDv7s", a, b)
	}
	if a > b {
		t.Errorf("event id %s made before %s sorts after it", a, b)
	}
}
