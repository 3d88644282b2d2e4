package allinone_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
)

// TestReportsStayInTheirTenant: an integrator token reports on its own tenant only, over
// both report RPCs, and the admin token's providers report covers every tenant.
func TestReportsStayInTheirTenant(t *testing.T) {
	e, tokens := twoTenants(t, 5)
	ctx := context.Background()
	acme := e.logsAs(tokens["acme"])

	resp, err := acme.Report(ctx, &eventlogv1.ReportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Format(time.DateOnly)
	if resp.Tenant != "acme" || len(resp.Rows) != 1 {
		t.Fatalf("acme's report: tenant %q, rows %v; want acme's one row of today", resp.Tenant, resp.Rows)
	}
	if r := resp.Rows[0]; r.Day != today || r.Flow != "orders" || r.Integrator != "shop-to-erp" || r.Entity != "order" ||
		r.Total != 5 || r.Created != 5 || r.Failures != 0 || r.P95DurationUs < r.P50DurationUs || r.P50DurationUs <= 0 {
		t.Errorf("acme's report row %v, want 5 created orders today with p50 <= p95", r)
	}
	if span := resp.To.AsTime().Sub(resp.From.AsTime()); span != 7*24*time.Hour || resp.To.AsTime().Format(time.DateOnly) <= today {
		t.Errorf("default range %s to %s, want the 7 UTC days up to and including today", resp.From.AsTime(), resp.To.AsTime())
	}

	for name, call := range map[string]func() error{
		"Report": func() error {
			_, err := acme.Report(ctx, &eventlogv1.ReportRequest{Tenant: "globex"})
			return err
		},
		"ReportProviders": func() error {
			_, err := acme.ReportProviders(ctx, &eventlogv1.ReportProvidersRequest{Tenant: "globex"})
			return err
		},
	} {
		if err := call(); connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Errorf("acme's token calling %s for globex: %v, want PermissionDenied", name, err)
		}
	}

	own, err := acme.ReportProviders(ctx, &eventlogv1.ReportProvidersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(own.Rows) != 1 || own.Rows[0].Tenant != "acme" || own.Rows[0].SourceType != "nats" || own.Rows[0].TargetType != "sql" ||
		own.Rows[0].Records != 5 || len(own.Rows[0].Flows) != 1 || own.Rows[0].Flows[0] != "orders" {
		t.Errorf("acme's providers report %v, want one row: acme, nats to sql, flow orders, 5 records", own.Rows)
	}
	all, err := e.logs.ReportProviders(ctx, &eventlogv1.ReportProvidersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Rows) != 2 || all.Rows[0].Tenant != "acme" || all.Rows[1].Tenant != "globex" || all.Rows[1].Records != 5 {
		t.Errorf("the admin's providers report %v, want acme's and globex's rows of 5 records each", all.Rows)
	}
}

// TestReportRefusesBadRequests: a report names what is wrong with the request.
func TestReportRefusesBadRequests(t *testing.T) {
	e, _ := twoTenants(t, 1)
	ctx := context.Background()
	now := time.Now()
	tests := []struct {
		name string
		req  *eventlogv1.ReportRequest
	}{
		{"the admin token names no tenant", &eventlogv1.ReportRequest{}},
		{"to before from", &eventlogv1.ReportRequest{Tenant: "acme", From: timestamppb.New(now), To: timestamppb.New(now.Add(-time.Hour))}},
		{"a range over a year", &eventlogv1.ReportRequest{Tenant: "acme", From: timestamppb.New(now.AddDate(-2, 0, 0))}},
		{"too many top errors", &eventlogv1.ReportRequest{Tenant: "acme", TopErrors: 1000}},
		{"an invalid timestamp", &eventlogv1.ReportRequest{Tenant: "acme", From: &timestamppb.Timestamp{Nanos: -1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.logs.Report(ctx, tc.req); connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Errorf("Report: %v, want InvalidArgument", err)
			}
		})
	}
}
