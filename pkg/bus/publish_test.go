package bus_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/bus"
)

// TestPublishRefusesTooLargeAsPermanent: a batch with one message larger
// than the server takes fails as a whole, before anything is sent, with a
// permanent error that names the message.
func TestPublishRefusesTooLargeAsPermanent(t *testing.T) {
	nc, js, _ := setup(t)
	small := nats.NewMsg("ingest.acme.shop.order")
	small.Header.Set(bus.HeaderMsgID, "small")
	small.Data = []byte("{}")
	big := nats.NewMsg("ingest.acme.shop.order")
	big.Header.Set(bus.HeaderMsgID, "big")
	big.Data = make([]byte, nc.MaxPayload())
	err := bus.NewPublisher(js).Publish(context.Background(), small, big)
	var perm *bus.PermanentError
	if !errors.As(err, &perm) || perm.Code != bus.CodeTooLarge {
		t.Fatalf("publishing a message over max_payload: %v, want a permanent %s error", err, bus.CodeTooLarge)
	}
	if !strings.Contains(err.Error(), "big") || !strings.Contains(err.Error(), "ingest.acme.shop.order") {
		t.Errorf("error %q does not name the message and its subject", err)
	}
	st, err := js.Stream(context.Background(), bus.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("the stream stored %d messages of a batch that could not be sent whole", info.State.Msgs)
	}
}

// fetchOne stores m on the ingest stream and returns it as a delivery.
func fetchOne(t *testing.T, js jetstream.JetStream, m *nats.Msg) jetstream.Msg {
	t.Helper()
	ctx := context.Background()
	if err := bus.NewPublisher(js).Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	c, err := js.CreateOrUpdateConsumer(ctx, bus.StreamIngest, jetstream.ConsumerConfig{Durable: "fetch", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for got := range batch.Messages() {
		return got
	}
	t.Fatalf("no message fetched: %v", batch.Error())
	return nil
}

// TestDeadLetterAlwaysFits dead-letters events that fit the server only
// without the dead letter's headers: the dead letter is stored without what
// does not fit, and says what it left out and where the event still is.
func TestDeadLetterAlwaysFits(t *testing.T) {
	for _, tt := range []struct {
		name string
		// bytes below max_payload of the data, and below JetStream's 64
		// KiB of an extra header
		data, extra int
		keepsHeader bool
	}{
		{"large payload", 400, 0, true},
		{"large headers", 0, 300, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nc, js, _ := setup(t)
			limit := int(nc.MaxPayload())
			m := nats.NewMsg("ingest.acme.shop.order")
			m.Header.Set(bus.HeaderMsgID, "near-the-limit")
			m.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
			if tt.extra > 0 {
				m.Header.Set("X-Big", strings.Repeat("h", 64<<10-tt.extra))
			}
			if tt.data > 0 {
				m.Data = make([]byte, limit-tt.data)
			}
			in := fetchOne(t, js, m)
			dl := bus.DeadLetter(in, "test", bus.CodeTooLarge, strings.Repeat("why ", 400))
			if err := bus.NewPublisher(js).Publish(context.Background(), dl); err != nil {
				t.Fatalf("publishing a dead letter of an event near max_payload: %v", err)
			}
			dlq, err := js.Stream(context.Background(), bus.StreamDeadLetter)
			if err != nil {
				t.Fatal(err)
			}
			got, err := dlq.GetMsg(context.Background(), 1)
			if err != nil {
				t.Fatalf("no dead letter stored: %v", err)
			}
			if len(got.Data) != 0 {
				t.Errorf("dead letter kept %d bytes of the event", len(got.Data))
			}
			omitted := got.Header.Get(bus.HeaderDeadOmitted)
			if !strings.Contains(omitted, "message 1 of stream "+bus.StreamIngest) {
				t.Errorf("%s = %q, want where the event still is", bus.HeaderDeadOmitted, omitted)
			}
			if got.Header.Get(bus.HeaderDeadCode) != bus.CodeTooLarge || got.Header.Get(bus.HeaderDeadSequence) != "1" {
				t.Errorf("dead letter headers lost: %v", got.Header)
			}
			if kept := got.Header.Get("Traceparent") != ""; kept != tt.keepsHeader {
				t.Errorf("event header kept = %v, want %v", kept, tt.keepsHeader)
			}
		})
	}
}
