package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	ingestv1 "github.com/syncline/syncline/pkg/api/syncline/ingest/v1"
	"github.com/syncline/syncline/pkg/api/syncline/ingest/v1/ingestv1connect"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/natsauth"
)

func newPublish(g *globals) *cobra.Command {
	var c ingest.Change
	var data, file string
	cmd := &cobra.Command{
		Use:   "publish --tenant T --endpoint E --entity N --key K (--data JSON | --file F)",
		Short: "Publish one change event to the ingest stream",
		Long: `Publish one change event, as any service would with the pkg/ingest Go package.
The record is a JSON object, given with --data or read from --file (- for stdin).
The ingest API checks the change first, as it checks its own: a change that no
flow reads (an unknown tenant, endpoint or entity) is refused, with what the
tenant's flows do read. A change whose event id the tenant already used is
reported, not stored again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case data != "" && file != "":
				return errors.New("give the record with --data or --file, not both")
			case file == "-":
				b, err := io.ReadAll(os.Stdin)
				if err != nil {
					return fmt.Errorf("reading the record from stdin: %w", err)
				}
				c.Payload = b
			case file != "":
				b, err := os.ReadFile(file)
				if err != nil {
					return fmt.Errorf("reading the record: %w", err)
				}
				c.Payload = b
			default:
				c.Payload = []byte(data)
			}
			// NATS takes the same tokens as the API: an integrator's
			// publishes to its own tenant only.
			token, err := g.authToken()
			if err != nil {
				return err
			}
			// NATS tells a refused publish asynchronously, and JetStream
			// would wait for an acknowledgement that never comes: the first
			// refusal ends the publish, saying why.
			ctx, cancel := context.WithCancelCause(cmd.Context())
			defer cancel(nil)
			refused := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				if errors.Is(err, nats.ErrPermissionViolation) {
					cancel(err)
				}
			})
			nc, err := nats.Connect(g.natsURL, append(natsauth.ClientOptions(token), nats.Name("syncline-publish"), nats.Timeout(5*time.Second), refused)...)
			if err != nil {
				return fmt.Errorf("connecting to NATS at %s: %w (is `syncline dev` running? Give the NATS URL with --nats (or SYNCLINE_NATS_URL), or the data folder of `syncline dev` with --data-dir (or SYNCLINE_DATA_DIR))", g.natsURL, err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return fmt.Errorf("opening JetStream: %w", err)
			}
			// No tracer provider: the event goes without trace context and
			// the mapper starts its trace, recorded wherever the services
			// export theirs (see ingest.NewPublisher).
			pub := ingest.NewPublisher(js, nil)
			if err := pub.Check(c); err != nil {
				return err
			}
			// NATS would take a change that no flow reads, and the mapper
			// could only dead-letter it: the ingest API, which knows the
			// flows, checks it first, as it checks its own.
			if err := g.checkChange(ctx, c); err != nil {
				return err
			}
			ids, err := pub.Publish(ctx, c)
			if cause := context.Cause(ctx); errors.Is(cause, nats.ErrPermissionViolation) {
				return fmt.Errorf("NATS refused the event: %w (a token publishes only to its own tenant's ingest.<tenant>.> subjects)", cause)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "published event %s\n", ids[0])
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Tenant, "tenant", "", "tenant")
	f.StringVar(&c.Endpoint, "endpoint", "", "source endpoint")
	f.StringVar(&c.Entity, "entity", "", "entity type, e.g. order")
	f.StringVar(&c.Key, "key", "", "the record's key in the source system")
	f.Int64Var(&c.Version, "version", 0, "source version (default: now in unix milliseconds)")
	f.StringVar(&c.Integrator, "integrator", "", "integrator (optional)")
	f.StringVar(&c.EventID, "event-id", "", "event id, unique in the tenant (default: a new UUIDv7)")
	f.BoolVar(&c.Delete, "delete", false, "the record was deleted")
	f.StringVar(&data, "data", "", "the record as a JSON object")
	f.StringVar(&file, "file", "", "read the record from this file (- for stdin)")
	return cmd
}

// checkChange asks the ingest API whether it would take c: valid, of the
// token's tenant, and read by a flow.
func (g *globals) checkChange(ctx context.Context, c ingest.Change) error {
	opts, err := g.clientOptions()
	if err != nil {
		return err
	}
	change := &ingestv1.Change{EventId: c.EventID, Tenant: c.Tenant, Integrator: c.Integrator, Endpoint: c.Endpoint, Entity: c.Entity,
		Key: c.Key, Version: c.Version, Delete: c.Delete, Record: string(c.Payload)}
	client := ingestv1connect.NewIngestServiceClient(httpClient(), g.server, opts...)
	if _, err := client.Publish(ctx, &ingestv1.PublishRequest{Changes: []*ingestv1.Change{change}, CheckOnly: true}); err != nil {
		return explain(err, g.server)
	}
	return nil
}
