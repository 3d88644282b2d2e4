// Command shopfeed feeds a webshop's records into Syncline: it reads each collection of the
// shop's REST API (json-server's, as the demo runs it), publishes every record as a change
// event with pkg/ingest — keyed by the record's id, versioned by its updated-at — and, with
// -wait, waits for each collection's outcomes in the API log before it reads the next, so
// that stock levels find their products and orders their customers.
//
// It stands in for a source connector that polls a webshop, which Syncline does not have
// yet. tools/scripts/demo-erp.sh runs it; see its README for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/api/syncline/ingest/v1/ingestv1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/natsauth"
)

type config struct {
	shop, collections      string
	tenant, endpoint       string
	updated                string
	server, natsURL, token string
	pageSize               int
	wait                   time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.shop, "shop", "", "the webshop's API, e.g. http://127.0.0.1:3000 (required)")
	flag.StringVar(&c.collections, "collections", defaultCollections, "the collections to feed, in order, as collection=entity pairs")
	flag.StringVar(&c.tenant, "tenant", "acme", "the tenant")
	flag.StringVar(&c.endpoint, "endpoint", "shop", "the webshop's endpoint in Syncline (a nats endpoint)")
	flag.StringVar(&c.updated, "updated", "updated_at", "the record field that says when it last changed (RFC 3339): the change's version")
	flag.StringVar(&c.server, "server", os.Getenv("SYNCLINE_SERVER"), "Syncline's API ($SYNCLINE_SERVER)")
	flag.StringVar(&c.natsURL, "nats", os.Getenv("SYNCLINE_NATS_URL"), "Syncline's NATS server, where changes are published ($SYNCLINE_NATS_URL)")
	flag.StringVar(&c.token, "token", os.Getenv("SYNCLINE_TOKEN"), "the tenant's integrator token, or the admin token ($SYNCLINE_TOKEN)")
	flag.IntVar(&c.pageSize, "page-size", 100, "records per page read from the webshop and per publish")
	flag.DurationVar(&c.wait, "wait", 0, "wait up to this long for each collection's outcomes in the API log before the next (0: publish and return)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, c)
	if errors.Is(err, errFailed) {
		fmt.Fprintf(os.Stderr, "shopfeed: %v; syncline logs --tenant %s --status failure shows them\n", err, c.tenant)
		os.Exit(1)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "shopfeed:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: every setting is a flag (shopfeed -help)", flag.Args())
	}
	for _, f := range []struct{ flag, v string }{{"-shop", c.shop}, {"-server (or SYNCLINE_SERVER)", c.server},
		{"-nats (or SYNCLINE_NATS_URL)", c.natsURL}, {"-token (or SYNCLINE_TOKEN)", c.token}} {
		if f.v == "" {
			return fmt.Errorf("%s is required", f.flag)
		}
	}
	if c.pageSize < 1 || c.pageSize > 1000 {
		return fmt.Errorf("-page-size %d: use 1 to 1000", c.pageSize)
	}
	collections, err := parseCollections(c.collections)
	if err != nil {
		return err
	}

	// NATS tells a refused publish asynchronously, and JetStream would wait for an
	// acknowledgement that never comes: the first refusal ends the feed, saying why.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	refused := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			cancel(fmt.Errorf("NATS refused a publish: %w (a token publishes only to its own tenant's ingest.<tenant>.> subjects)", err))
		}
	})
	nc, err := nats.Connect(c.natsURL, append(natsauth.ClientOptions(c.token), nats.Name("shopfeed"), nats.Timeout(5*time.Second), refused)...)
	if err != nil {
		return fmt.Errorf("connecting to NATS at %s: %w", c.natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("opening JetStream: %w", err)
	}
	opts := []connect.ClientOption{connect.WithProtoJSON(), connect.WithInterceptors(auth.Bearer(c.token))}
	f := &feeder{
		shop:   &shop{base: c.shop, client: http.DefaultClient, pageSize: c.pageSize},
		source: source{Tenant: c.tenant, Endpoint: c.endpoint, Updated: c.updated},
		// No tracer provider: each event's trace starts at the mapper, and is recorded
		// wherever Syncline exports its traces.
		pub:    ingest.NewPublisher(js, nil),
		ingest: ingestv1connect.NewIngestServiceClient(http.DefaultClient, c.server, opts...),
		logs:   eventlogv1connect.NewLogServiceClient(http.DefaultClient, c.server, opts...),
		wait:   c.wait,
		poll:   250 * time.Millisecond,
		out:    os.Stdout,
	}
	err = f.feed(ctx, collections)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}
