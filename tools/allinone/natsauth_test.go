package allinone_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/natsauth"
)

// TestNATSTakesTheAPIsTokens: the bus's listener takes no connection without
// a token; an integrator's token publishes into its own tenant only and
// reads nothing of any stream; a revoked token no longer connects.
func TestNATSTakesTheAPIsTokens(t *testing.T) {
	e, tokens := twoTenants(t, 1)
	url := e.in.NATSURL()
	if nc, err := nats.Connect(url, nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Error("a connection without credentials was let in")
	}
	if nc, err := nats.Connect(url, append(natsauth.ClientOptions("sli_never-issued-0123456789"), nats.Timeout(5*time.Second))...); err == nil {
		nc.Close()
		t.Error("a connection with a token never issued was let in")
	}

	violations := make(chan error, 16)
	nc, err := nats.Connect(url, append(natsauth.ClientOptions(tokens["acme"]), nats.Timeout(5*time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case violations <- err:
			default:
			}
		}))...)
	if err != nil {
		t.Fatalf("connecting with acme's integrator token: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := ingest.NewPublisher(js, nil).Publish(ctx, ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "over-nats", Version: 1, Payload: order(3, "paid")}); err != nil {
		t.Fatalf("acme publishing into its own tenant: %v", err)
	}
	eventually(t, 30*time.Second, func() string {
		if len(e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: "over-nats"})) != 1 {
			return "acme's change published over NATS with its token is not logged"
		}
		return ""
	})
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := ingest.NewPublisher(js, nil).Publish(short, ingest.Change{Tenant: "globex", Endpoint: "shop", Entity: "order", Key: "intruder", Version: 1, Payload: order(4, "paid")}); err == nil {
		t.Error("acme's token published into globex")
	}
	// Reading: a stream's messages through the JetStream API, or the
	// subjects themselves.
	if _, err := js.Stream(short, bus.StreamIngest); err == nil {
		t.Error("acme's token read the ingest stream's information")
	}
	if _, err := nc.SubscribeSync("audit.>"); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for refused := false; !refused; {
		select {
		case err := <-violations:
			refused = strings.Contains(strings.ToLower(err.Error()), "subscription")
		case <-deadline:
			t.Fatal("acme's token subscribed to the audit subjects without a permissions violation")
		}
	}
	publish := func(tenant, key string) {
		e.publish(ingest.Change{Tenant: tenant, Endpoint: "shop", Entity: "order", Key: key, Version: 1, Payload: order(8, "paid")})
	}
	publish("globex", "marker")
	eventually(t, 30*time.Second, func() string {
		if len(e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "globex", RemoteId: "marker"})) != 1 {
			return "globex's marker is not logged yet"
		}
		return ""
	})
	if recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "globex", RemoteId: "intruder"}); len(recs) != 0 {
		t.Errorf("acme's refused publish into globex reached globex's log: %v", recs)
	}
	if got := len(e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "globex"})); got != 2 {
		t.Error(fmt.Sprintf("globex has %d log records, want its own 2", got))
	}
}
