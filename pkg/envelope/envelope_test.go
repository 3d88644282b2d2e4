package envelope_test

import (
	"errors"
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
	for _, tt := range []struct {
		name    string
		op      eventv1.Operation
		payload string
		ok      bool
	}{
		{"object", eventv1.Operation_OPERATION_UPSERT, ` {"a": [1, 2]}`, true},
		{"array", eventv1.Operation_OPERATION_UPSERT, `[1]`, false},
		{"truncated", eventv1.Operation_OPERATION_UPSERT, `{"a":`, false},
		{"empty upsert", eventv1.Operation_OPERATION_UPSERT, ``, false},
		{"empty delete", eventv1.Operation_OPERATION_DELETE, ``, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := valid()
			e.Operation, e.Payload = tt.op, []byte(tt.payload)
			err := envelope.CheckPayload(e)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, envelope.ErrPayloadNotJSON)) {
				t.Errorf("CheckPayload(%q) = %v, want ok=%v", tt.payload, err, tt.ok)
			}
		})
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
