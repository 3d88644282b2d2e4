package eventlog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/services/eventlog/apilog"
)

// FlowLister lists the compiled flow configs; a *flowconfig.Index is one. The providers report
// reads the connector types from it, since the API log records name a flow but not the types
// of its endpoints.
type FlowLister interface {
	Flows() []*flowconfig.Flow
}

var _ FlowLister = (*flowconfig.Index)(nil)

// defaultReportDays is the default report range: the last 7 UTC days, today included.
const defaultReportDays = 7

// Connector types the providers report shows when the flow configs cannot say.
const (
	typeUnknown = "unknown" // the flow no longer exists
	typeNone    = "none"    // no flow took the event
)

// reportRange fills in the default range: to is midnight UTC after today, and from
// defaultReportDays days before to.
func reportRange(from, to *timestamppb.Timestamp, now time.Time) (time.Time, time.Time, error) {
	span := defaultReportDays * 24 * time.Hour
	var f, t time.Time
	for _, ts := range []struct {
		name string
		in   *timestamppb.Timestamp
		out  *time.Time
	}{{"from", from, &f}, {"to", to, &t}} {
		if ts.in == nil {
			continue
		}
		if err := ts.in.CheckValid(); err != nil {
			return f, t, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %w", ts.name, err))
		}
		*ts.out = ts.in.AsTime()
	}
	if t.IsZero() {
		t = now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	}
	if f.IsZero() {
		f = t.Add(-span)
	}
	return f, t, nil
}

// storeError turns a store's error into the API's: a refused query is the caller's mistake.
func storeError(err error) error {
	var invalid *apilog.QueryError
	if errors.As(err, &invalid) {
		return connect.NewError(connect.CodeInvalidArgument, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}

// Report answers a report of one tenant, scoped as QueryLogs is.
func (h *logHandler) Report(ctx context.Context, req *eventlogv1.ReportRequest) (*eventlogv1.ReportResponse, error) {
	tenant, err := auth.Tenant(ctx, req.Tenant)
	if err != nil {
		return nil, err
	}
	if tenant == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("tenant is required: a report covers one tenant's records"))
	}
	from, to, err := reportRange(req.From, req.To, time.Now())
	if err != nil {
		return nil, err
	}
	rows, err := h.store.Report(ctx, apilog.ReportQuery{
		Tenant: tenant, From: from, To: to,
		Integrator: req.Integrator, Flow: req.Flow, Entity: req.Entity,
		TopErrors: int(req.TopErrors),
	})
	if err != nil {
		return nil, storeError(err)
	}
	resp := &eventlogv1.ReportResponse{Tenant: tenant, From: timestamppb.New(from), To: timestamppb.New(to),
		Rows: make([]*eventlogv1.ReportRow, len(rows))}
	for i, r := range rows {
		row := &eventlogv1.ReportRow{
			Integrator: r.Integrator, Flow: r.Flow, Entity: r.Entity, Day: r.Day.Format(time.DateOnly),
			Total: r.Total, Created: r.Created, Updated: r.Updated, Deleted: r.Deleted, Skipped: r.Skipped, Failed: r.Failed,
			Failures: r.Failures, FailureRate: r.FailureRate,
			P50DurationUs: r.P50.Microseconds(), P95DurationUs: r.P95.Microseconds(),
		}
		for _, e := range r.TopErrors {
			row.TopErrors = append(row.TopErrors, &eventlogv1.ErrorCount{Code: e.Code, Reason: e.Reason, Count: e.Count})
		}
		resp.Rows[i] = row
	}
	return resp, nil
}

// ReportProviders answers the providers report: for every tenant the caller may see (the
// admin token: all tenants with flows, or the one it names; an integrator token: its own),
// the records per pair of source and target connector types. Types come from the flow
// configs as they are now; a flow's every pair is listed, with or without traffic.
func (h *logHandler) ReportProviders(ctx context.Context, req *eventlogv1.ReportProvidersRequest) (*eventlogv1.ReportProvidersResponse, error) {
	tenant, err := auth.Tenant(ctx, req.Tenant)
	if err != nil {
		return nil, err
	}
	from, to, err := reportRange(req.From, req.To, time.Now())
	if err != nil {
		return nil, err
	}
	flows := map[string]map[string]*flowconfig.Flow{} // tenant -> flow name -> flow
	for _, f := range h.flows.Flows() {
		if tenant != "" && f.Tenant != tenant {
			continue
		}
		if flows[f.Tenant] == nil {
			flows[f.Tenant] = map[string]*flowconfig.Flow{}
		}
		flows[f.Tenant][f.Name] = f
	}
	tenants := []string{tenant}
	if tenant == "" {
		tenants = make([]string, 0, len(flows))
		for t := range flows {
			tenants = append(tenants, t)
		}
	}
	slices.Sort(tenants)
	resp := &eventlogv1.ReportProvidersResponse{From: timestamppb.New(from), To: timestamppb.New(to)}
	for _, t := range tenants {
		traffic, err := h.store.Traffic(ctx, apilog.TrafficQuery{Tenant: t, From: from, To: to})
		if err != nil {
			return nil, storeError(err)
		}
		resp.Rows = append(resp.Rows, providerRows(t, flows[t], traffic)...)
	}
	return resp, nil
}

// providerRows groups one tenant's traffic by the connector types of its flows.
func providerRows(tenant string, flows map[string]*flowconfig.Flow, traffic []apilog.FlowTraffic) []*eventlogv1.ProviderTraffic {
	type pair struct{ source, target string }
	byPair := map[pair]*eventlogv1.ProviderTraffic{}
	row := func(p pair) *eventlogv1.ProviderTraffic {
		r := byPair[p]
		if r == nil {
			r = &eventlogv1.ProviderTraffic{Tenant: tenant, SourceType: p.source, TargetType: p.target}
			byPair[p] = r
		}
		return r
	}
	addFlow := func(r *eventlogv1.ProviderTraffic, name string) {
		if name != "" && !slices.Contains(r.Flows, name) {
			r.Flows = append(r.Flows, name)
		}
	}
	// endpointTypes knows the types of the tenant's endpoints that flows name, for the events
	// that failed before a flow took them.
	endpointTypes := map[string]string{}
	for name, f := range flows {
		addFlow(row(pair{f.Source.Type, f.Target.Type}), name)
		endpointTypes[f.Source.Name] = f.Source.Type
		endpointTypes[f.Target.Name] = f.Target.Type
	}
	for _, t := range traffic {
		p := pair{typeUnknown, typeUnknown}
		switch f := flows[t.Flow]; {
		case f != nil:
			p = pair{f.Source.Type, f.Target.Type}
		case t.Flow == "":
			p = pair{cmp.Or(endpointTypes[t.SourceEndpoint], typeUnknown), typeNone}
		}
		r := row(p)
		addFlow(r, t.Flow)
		r.Records += t.Records
		r.Failures += t.Failures
	}
	out := make([]*eventlogv1.ProviderTraffic, 0, len(byPair))
	for _, r := range byPair {
		slices.Sort(r.Flows)
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *eventlogv1.ProviderTraffic) int {
		return cmp.Or(strings.Compare(a.SourceType, b.SourceType), strings.Compare(a.TargetType, b.TargetType))
	})
	return out
}
