package connector

import (
	"context"
	"errors"
	"net/http"

	"connectrpc.com/connect"

	ingestv1 "github.com/syncline/syncline/pkg/api/syncline/ingest/v1"
	"github.com/syncline/syncline/pkg/api/syncline/ingest/v1/ingestv1connect"
	"github.com/syncline/syncline/pkg/apiserver"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/ingest"
)

// ingestHandler is the HTTP way in for change events: the connector owns the
// edges (DESIGN section 2), and this is one.
type ingestHandler struct {
	pub *ingest.Publisher
}

var _ ingestv1connect.IngestServiceHandler = (*ingestHandler)(nil)

// Publish checks that every change is of the caller's tenant and has a flow
// to go to (the flow configs say which tenants exist and what their flows
// read), then publishes them as one batch, unless the caller asks for the
// check only. Changes whose event id the tenant had already used are
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
	var ids []string
	var err error
	if req.CheckOnly {
		err = h.pub.Check(changes...)
	} else {
		ids, err = h.pub.Publish(ctx, changes...)
	}
	var invalid *ingest.InvalidChangeError
	var unrouted *ingest.UnroutedChangeError
	var dup *ingest.DuplicateError
	var permanent *bus.PermanentError
	switch {
	case errors.As(err, &invalid):
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	case errors.As(err, &unrouted) && errors.Is(err, flowconfig.ErrUnknownTenant):
		return nil, connect.NewError(connect.CodeNotFound, err)
	case errors.As(err, &unrouted):
		return nil, connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.As(err, &dup):
		resp := &ingestv1.PublishResponse{EventIds: ids}
		for _, d := range dup.Duplicates {
			resp.Duplicates = append(resp.Duplicates, &ingestv1.Duplicate{Index: int32(d.Index), EventId: d.EventID, Key: d.Key, Message: d.Message()})
		}
		return resp, nil
	case errors.As(err, &permanent):
		// A message the NATS server will never take (its max_payload is
		// below Syncline's record limit): the bus's error says which.
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	case err != nil:
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return &ingestv1.PublishResponse{EventIds: ids}, nil
}

// Mount adds the ingest API to mux, with its request limit. mux must
// authenticate every request (auth.Authenticator.Handler).
func (s *Service) Mount(mux *http.ServeMux) {
	l := apiserver.IngestLimit
	path, h := ingestv1connect.NewIngestServiceHandler(&ingestHandler{pub: ingest.NewPublisher(s.deps.JetStream, s.deps.Tracer, ingest.WithRoutes(s.deps.Flows.Route))}, l.Option())
	mux.Handle(path, l.Handler(h))
}
