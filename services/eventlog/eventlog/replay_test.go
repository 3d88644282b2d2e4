package eventlog

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/nats-io/nats.go"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/secret"
	"github.com/syncline/syncline/services/eventlog/deadletter"
)

// TestReplayGoesToTheKeysPartition: an ingest event is stored with its
// partition in place of the bucket it was published with. A replay sends
// it again on its key's bucket, as a new change of the key is sent, never
// on the partition read as a bucket; one that cannot be decoded goes
// without a bucket, to partition 0. A failed push goes back to dedup.
func TestReplayGoesToTheKeysPartition(t *testing.T) {
	box, err := secret.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{deps: Deps{Secrets: box}}
	e := &eventv1.Envelope{SchemaVersion: 1, EventId: envelope.NewEventID(), Tenant: "acme", SourceEndpoint: "shop", Entity: "order",
		Operation: eventv1.Operation_OPERATION_UPSERT, SourceKey: "SO-77", SourceVersion: 3, Payload: []byte(`{"n":77}`)}
	good, err := envelope.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	letter := func(subject string, data []byte) deadletter.Letter {
		b, err := json.Marshal(sealedMsg{Subject: subject, Header: nats.Header{}, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := box.Seal(binding("acme"), b)
		if err != nil {
			t.Fatal(err)
		}
		return deadletter.Letter{ID: "l1", Tenant: "acme", State: deadletter.StateOpen, Sealed: sealed}
	}
	for _, tc := range []struct{ stored, want string }{
		{"ingest.acme.shop.order.3", bus.IngestSubject("acme", "shop", "order", "SO-77")},
		{"ingest.acme.shop.order", bus.IngestSubject("acme", "shop", "order", "SO-77")},
		{"push.acme.orders.1", "flow.acme.orders.1"},
	} {
		m, _, err := s.replayMsg(letter(tc.stored, good))
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != tc.want {
			t.Errorf("stored on %s: replayed on %s, want %s", tc.stored, m.Subject, tc.want)
		}
	}
	m, _, err := s.replayMsg(letter("ingest.acme.shop.order.3", []byte("not an envelope")))
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "ingest.acme.shop.order" {
		t.Errorf("an event that cannot be decoded replayed on %s, want ingest.acme.shop.order (partition 0)", m.Subject)
	}
}
