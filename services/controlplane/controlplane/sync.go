package controlplane

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/poll"
)

// SyncFlow asks for a poll of a flow's source now. A flow whose source publishes its
// changes has nothing to poll: that is refused, saying so.
func (h *resourceHandler) SyncFlow(ctx context.Context, req *controlplanev1.SyncFlowRequest) (*controlplanev1.SyncFlowResponse, error) {
	tenant, err := target(ctx, KindFlow, req.Tenant, req.Flow)
	if err != nil {
		return nil, err
	}
	res := name(KindFlow, tenant, req.Flow)
	r, err := h.s.deps.Resources.Get(ctx, KindFlow, tenant, req.Flow)
	if err != nil {
		return nil, storeError(res, err)
	}
	var spec FlowSpec
	if err := decodeStrict(r.Spec, &spec); err != nil {
		return nil, apiError(connect.CodeFailedPrecondition, ReasonInvalid, res, "apply the flow again", fmt.Errorf("decoding stored flow %s/%s: %w", tenant, req.Flow, err))
	}
	if spec.Schedule == nil || spec.Schedule.Mode == poll.ModeRealtime {
		return nil, apiError(connect.CodeFailedPrecondition, ReasonInvalid, res, "give the flow a schedule of mode interval or cron to poll its source",
			fmt.Errorf("flow %s of tenant %s has a realtime schedule: its source publishes its changes, and there is nothing to poll", req.Flow, tenant))
	}
	src := poll.Source{Tenant: tenant, Endpoint: spec.Source, Entity: spec.Entity}
	at := time.Now()
	if err := h.s.polls.RequestSync(ctx, src, poll.Request{At: at, FromStart: req.FromStart}); err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return &controlplanev1.SyncFlowResponse{Endpoint: spec.Source, Entity: spec.Entity, RequestedAt: timestamppb.New(at)}, nil
}

// pollsOf returns what is known of the polls of a flow's source, for its status; nil for
// a flow that is not polled.
func (s *Service) pollsOf(ctx context.Context, tenant string, f *controlplanev1.Resource) (*controlplanev1.SourcePolls, error) {
	fields := f.GetSpec().GetFields()
	mode := fields["schedule"].GetStructValue().GetFields()["mode"].GetStringValue()
	if mode != poll.ModeInterval && mode != poll.ModeCron {
		return nil, nil
	}
	src := poll.Source{Tenant: tenant, Endpoint: fields["source"].GetStringValue(), Entity: fields["entity"].GetStringValue()}
	st, _, err := s.polls.Get(ctx, src)
	if err != nil {
		return nil, err
	}
	out := &controlplanev1.SourcePolls{Cursor: st.Cursor, Outcome: st.Outcome, Error: st.Error, Changes: st.Changes, Total: st.Total}
	for _, t := range []struct {
		v   time.Time
		dst **timestamppb.Timestamp
	}{{st.Started, &out.Started}, {st.Finished, &out.Finished}, {st.Next, &out.Next}} {
		if !t.v.IsZero() {
			*t.dst = timestamppb.New(t.v)
		}
	}
	return out, nil
}
