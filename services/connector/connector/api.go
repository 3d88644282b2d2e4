package connector

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"

	ingestv1 "github.com/syncline/syncline/pkg/api/syncline/ingest/v1"
	"github.com/syncline/syncline/pkg/api/syncline/ingest/v1/ingestv1connect"
	"github.com/syncline/syncline/pkg/apiserver"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/ingest"
)

// ingestHandler is the HTTP way in for change events: the connector owns the
// edges (DESIGN section 2), and this is one.
type ingestHandler struct {
	pub *ingest.Publisher
}

var _ ingestv1connect.IngestServiceHandler = (*ingestHandler)(nil)

// Publish checks that every change is of the caller's tenant, then publishes
// them as one batch. Changes whose event id the tenant had already used are
// listed in the answer's duplicates: the rest of the batch is stored, and a
// retry must be able to tell what it needs to do.
func (h *ingestHandler) Publish(ctx context.Context, req *ingestv1.PublishRequest) (*ingestv1.PublishResponse, error) {
	if len(req.Changes) == 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("no changes: send at least one"))
	}
	changes := make([]ingest.Change, len(req.Changes))
	for i, c := range req.Changes {
		tenant, err := auth.Tenant(ctx, c.Tenant)
		if err != nil {
			return nil, err
		}
		changes[i] = ingest.Change{
			EventID: c.EventId, Tenant: tenant, Integrator: c.Integrator, Endpoint: c.Endpoint, Entity: c.Entity,
			Key: c.Key, Version: c.Version, Delete: c.Delete, Payload: []byte(c.Record), Attributes: c.Attributes,
		}
		if c.OccurredAt != nil {
			changes[i].OccurredAt = c.OccurredAt.AsTime()
		}
	}
	ids, err := h.pub.Publish(ctx, changes...)
	var invalid *ingest.InvalidChangeError
	var dup *ingest.DuplicateError
	switch {
	case errors.As(err, &invalid):
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	case errors.As(err, &dup):
		resp := &ingestv1.PublishResponse{EventIds: ids}
		for _, d := range dup.Duplicates {
			resp.Duplicates = append(resp.Duplicates, &ingestv1.Duplicate{Index: int32(d.Index), EventId: d.EventID, Key: d.Key, Message: d.Message()})
		}
		return resp, nil
	case errors.Is(err, nats.ErrMaxPayload):
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%w: the NATS server takes smaller messages than Syncline allows a record; send smaller records, or raise the server's max_payload", err))
	case err != nil:
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return &ingestv1.PublishResponse{EventIds: ids}, nil
}

// Mount adds the ingest API to mux, with its request limit. mux must
// authenticate every request (auth.Authenticator.Handler).
func (s *Service) Mount(mux *http.ServeMux) {
	l := apiserver.IngestLimit
	path, h := ingestv1connect.NewIngestServiceHandler(&ingestHandler{pub: ingest.NewPublisher(s.deps.JetStream, s.deps.Tracer)}, l.Option())
	mux.Handle(path, l.Handler(h))
}
