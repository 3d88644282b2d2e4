package eventlog

import (
	"context"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/services/eventlog/apilog"
)

type logHandler struct {
	store apilog.Store
	flows FlowLister
}

var _ eventlogv1connect.LogServiceHandler = (*logHandler)(nil)

func newLogHandler(store apilog.Store, flows FlowLister, opts ...connect.HandlerOption) (string, http.Handler) {
	return eventlogv1connect.NewLogServiceHandler(&logHandler{store: store, flows: flows}, opts...)
}

// QueryLogs answers a log query. Invalid filters are the caller's mistake
// (InvalidArgument) and say which filter is wrong.
func (h *logHandler) QueryLogs(ctx context.Context, req *eventlogv1.QueryLogsRequest) (*eventlogv1.QueryLogsResponse, error) {
	// An integrator token queries its own tenant, whether it names it or
	// not; another tenant is refused.
	tenant, err := logTenant(ctx, req.Tenant)
	if err != nil {
		return nil, err
	}
	q := apilog.Query{
		Tenant:     tenant,
		SourceKey:  req.RemoteId,
		Integrator: req.Integrator,
		Flow:       req.Flow,
		Entity:     req.Entity,
		Status:     apilog.Status(req.Status),
		Action:     apilog.Action(req.Action),
		Limit:      int(req.PageSize),
		Cursor:     req.PageToken,
	}
	if req.From != nil {
		q.From = req.From.AsTime()
	}
	if req.To != nil {
		q.To = req.To.AsTime()
	}
	page, err := h.store.Query(ctx, q)
	if err != nil {
		return nil, storeError(err)
	}
	resp := &eventlogv1.QueryLogsResponse{NextPageToken: page.NextCursor, Records: make([]*eventlogv1.LogRecord, len(page.Records))}
	for i, r := range page.Records {
		resp.Records[i] = &eventlogv1.LogRecord{
			EventId:        r.EventID,
			Tenant:         r.Tenant,
			Integrator:     r.Integrator,
			Flow:           r.Flow,
			Entity:         r.Entity,
			SourceEndpoint: r.SourceEndpoint,
			RemoteId:       r.SourceKey,
			TargetId:       r.TargetID,
			Action:         string(r.Action),
			Status:         string(r.Status),
			Reason:         r.Reason,
			Code:           r.ErrorCode,
			Attempts:       uint32(r.Attempts),
			DurationUs:     r.Duration.Microseconds(),
			TraceId:        r.TraceID,
			OccurredAt:     timestamp(r.OccurredAt),
			LoggedAt:       timestamp(r.LoggedAt),
		}
	}
	return resp, nil
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
