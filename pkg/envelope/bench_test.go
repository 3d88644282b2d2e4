package envelope_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	"github.com/syncline/syncline/pkg/envelope"
)

// realistic is an event as the connector stage sees it: every routing field,
// two attributes, both timestamps, a mapper's Result and a 1 KiB JSON record.
func realistic() *eventv1.Envelope {
	var record strings.Builder
	record.WriteString(`{"id":"10042","customer":"c-77","lines":[`)
	for i := 0; record.Len() < 1000; i++ {
		if i > 0 {
			record.WriteByte(',')
		}
		fmt.Fprintf(&record, `{"sku":"SKU-%05d","qty":%d,"price":"%d.95"}`, i, i%7+1, 10+i)
	}
	record.WriteString(`]}`)
	at := time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)
	return &eventv1.Envelope{
		SchemaVersion:  envelope.SchemaVersion,
		EventId:        "01959a3c-7f2e-7b3a-9c41-5d2e8f6a1b0c",
		Tenant:         "acme",
		Integrator:     "northwind",
		SourceEndpoint: "webshop",
		Flow:           "orders-to-erp",
		Entity:         "order",
		Operation:      eventv1.Operation_OPERATION_UPSERT,
		SourceKey:      "10042",
		SourceVersion:  at.UnixMilli(),
		OccurredAt:     envelope.Timestamp(at),
		Payload:        []byte(record.String()),
		Attributes:     map[string]string{"channel": "web", "region": "eu-west"},
		PublishedAt:    envelope.Timestamp(at.Add(40 * time.Millisecond)),
		FlowGeneration: 3,
		Result: &eventv1.Result{
			Stage:       "mapper",
			Action:      eventv1.Action_ACTION_UPDATED,
			Attempts:    1,
			ContentHash: envelope.ContentHash([]byte(record.String())),
			DurationUs:  412,
		},
	}
}

func BenchmarkEnvelope(b *testing.B) {
	e := realistic()
	data, err := envelope.Encode(e)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := envelope.Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode staged", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := envelope.DecodeStaged(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A stage decodes each event once, from memory it has not read yet:
	// 20,000 different envelopes (26 MB), in turn.
	cold := make([][]byte, 20000)
	for i := range cold {
		c := realistic()
		c.SourceKey = fmt.Sprint(10000 + i)
		if cold[i], err = envelope.Encode(c); err != nil {
			b.Fatal(err)
		}
	}
	for name, decode := range map[string]func([]byte) (*eventv1.Envelope, error){"decode cold": envelope.Decode, "decode staged cold": envelope.DecodeStaged} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			i := 0
			for b.Loop() {
				if _, err := decode(cold[i%len(cold)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := envelope.Encode(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
