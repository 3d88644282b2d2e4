package bus_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/natstest"
)

// BenchmarkPublishBatch publishes batches of 100 1 KiB messages to a
// file-backed stream and waits for every acknowledgement, over the
// in-process connection and over TCP.
func BenchmarkPublishBatch(b *testing.B) {
	payload := make([]byte, 1024)
	for _, conn := range []string{"in-process", "tcp"} {
		b.Run(conn, func(b *testing.B) {
			s := natstest.Run(b)
			var nc *nats.Conn
			var err error
			if conn == "tcp" {
				nc, err = nats.Connect(s.ClientURL())
			} else {
				nc, err = s.Connect("bench")
			}
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
			if err != nil {
				b.Fatal(err)
			}
			if err := bus.EnsureStreams(context.Background(), js, bus.DefaultConfig()); err != nil {
				b.Fatal(err)
			}
			pub := bus.NewPublisher(js)
			msgs := make([]*nats.Msg, 100)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range msgs {
					m := nats.NewMsg("ingest.acme.shop.order")
					m.Header.Set(bus.HeaderMsgID, strconv.Itoa(i*100+j))
					m.Data = payload
					msgs[j] = m
				}
				if err := pub.Publish(context.Background(), msgs...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
