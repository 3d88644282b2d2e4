package allinone_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	ingestv1 "github.com/syncline/syncline/pkg/api/syncline/ingest/v1"
	"github.com/syncline/syncline/pkg/api/syncline/ingest/v1/ingestv1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/ingest"
)

// attempt is one try of acme's token at something of globex's. It returns
// the call's error, which must be a refusal.
type attempt struct {
	what string
	// own: the call is the caller's own (its own tenant's, or of no
	// tenant), so it is answered; call fails when the answer holds
	// anything of globex's.
	own  bool
	call func(ctx context.Context) error
}

// TestNoTenantReachesAnother is the isolation contract: with tenant acme's
// integrator token, every method of every API is tried against tenant
// globex's names, ids and records, and each try is refused; afterwards
// globex's resources, log, dead letters and token are as they were. Every
// method of every service must have its cases here: a new method without
// one fails the test.
func TestNoTenantReachesAnother(t *testing.T) {
	e, tokens := twoTenants(t, 2)
	ctx := context.Background()
	// globex has a dead letter: a record its mapping cannot map.
	e.publish(ingest.Change{Tenant: "globex", Endpoint: "shop", Entity: "order", Key: "broken", Version: 1, Payload: []byte(`{"status":"paid"}`)})
	admin := eventlogv1connect.NewDeadLetterServiceClient(http.DefaultClient, e.in.APIURL(), connect.WithInterceptors(auth.Bearer(e.in.AdminToken())))
	var letter *eventlogv1.DeadLetter
	eventually(t, 30*time.Second, func() string {
		resp, err := admin.ListDeadLetters(ctx, &eventlogv1.ListDeadLettersRequest{Filter: &eventlogv1.DeadLetterFilter{Tenant: "globex"}})
		if err != nil {
			return err.Error()
		}
		if len(resp.Letters) != 1 {
			return fmt.Sprintf("globex has %d dead letters, want 1", len(resp.Letters))
		}
		letter = resp.Letters[0]
		return ""
	})
	before := globexState(t, e)

	as := connect.WithInterceptors(auth.Bearer(tokens["acme"]))
	res := controlplanev1connect.NewResourceServiceClient(http.DefaultClient, e.in.APIURL(), as)
	logs := eventlogv1connect.NewLogServiceClient(http.DefaultClient, e.in.APIURL(), as)
	letters := eventlogv1connect.NewDeadLetterServiceClient(http.DefaultClient, e.in.APIURL(), as)
	in := ingestv1connect.NewIngestServiceClient(http.DefaultClient, e.in.APIURL(), as)
	globexFlow := resourceOf(t, "Flow", "globex", "orders", map[string]any{"integrator": "shop-to-erp", "source": "shop", "target": "erp", "entity": "order",
		"mapping": map[string]any{"fields": map[string]any{"order_number": "source.number"}, "exclude": []any{"*"}}})
	cases := map[string][]attempt{
		controlplanev1connect.ResourceServiceApplyProcedure: {
			{"change globex's flow", false, func(ctx context.Context) error {
				_, err := res.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{globexFlow}})
				return err
			}},
			{"dry-run globex's flow", false, func(ctx context.Context) error {
				_, err := res.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{globexFlow}, DryRun: true})
				return err
			}},
			{"change the tenant globex", false, func(ctx context.Context) error {
				_, err := res.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{resourceOf(t, "Tenant", "", "globex", map[string]any{})}})
				return err
			}},
			{"widen its own tenant's egress policy", false, func(ctx context.Context) error {
				_, err := res.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
					resourceOf(t, "Tenant", "", "acme", map[string]any{"egress": map[string]any{"allow": []any{"127.0.0.1"}}})}})
				return err
			}},
			{"an integrator in globex", false, func(ctx context.Context) error {
				_, err := res.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{resourceOf(t, "Integrator", "globex", "mole", map[string]any{})}})
				return err
			}},
		},
		controlplanev1connect.ResourceServiceListResourcesProcedure: {
			{"list globex's flows", false, func(ctx context.Context) error {
				_, err := res.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: "Flow", Tenant: "globex"})
				return err
			}},
			{"list the tenants", true, func(ctx context.Context) error {
				resp, err := res.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: "Tenant"})
				return leaks(resp, err, "globex")
			}},
		},
		controlplanev1connect.ResourceServiceGetResourceProcedure: {
			{"get globex's endpoint", false, func(ctx context.Context) error {
				_, err := res.GetResource(ctx, &controlplanev1.GetResourceRequest{Kind: "Endpoint", Tenant: "globex", Name: "erp"})
				return err
			}},
			{"get the tenant globex", false, func(ctx context.Context) error {
				_, err := res.GetResource(ctx, &controlplanev1.GetResourceRequest{Kind: "Tenant", Name: "globex"})
				return err
			}},
		},
		controlplanev1connect.ResourceServiceDeleteResourceProcedure: {
			{"delete globex's flow", false, func(ctx context.Context) error {
				_, err := res.DeleteResource(ctx, &controlplanev1.DeleteResourceRequest{Kind: "Flow", Tenant: "globex", Name: "orders"})
				return err
			}},
			{"delete the tenant globex", false, func(ctx context.Context) error {
				_, err := res.DeleteResource(ctx, &controlplanev1.DeleteResourceRequest{Kind: "Tenant", Name: "globex"})
				return err
			}},
		},
		controlplanev1connect.ResourceServiceRotateTokenProcedure: {
			{"rotate globex's token", false, func(ctx context.Context) error {
				_, err := res.RotateToken(ctx, &controlplanev1.RotateTokenRequest{Tenant: "globex", Integrator: "shop-to-erp"})
				return err
			}},
		},
		controlplanev1connect.ResourceServiceRevokeTokenProcedure: {
			{"revoke globex's token", false, func(ctx context.Context) error {
				_, err := res.RevokeToken(ctx, &controlplanev1.RevokeTokenRequest{Tenant: "globex", Integrator: "shop-to-erp"})
				return err
			}},
		},
		controlplanev1connect.ResourceServiceGetDefaultMappingProcedure: {
			{"the default mapping holds no tenant's data", true, func(ctx context.Context) error {
				resp, err := res.GetDefaultMapping(ctx, &controlplanev1.GetDefaultMappingRequest{Entity: "order"})
				return leaks(resp, err, "globex")
			}},
		},
		controlplanev1connect.ResourceServiceTestEndpointProcedure: {
			{"test globex's endpoint", false, func(ctx context.Context) error {
				_, err := res.TestEndpoint(ctx, &controlplanev1.TestEndpointRequest{Tenant: "globex", Name: "erp"})
				return err
			}},
		},
		controlplanev1connect.ResourceServiceTestFlowProcedure: {
			{"test globex's flow, reading its target", false, func(ctx context.Context) error {
				record, _ := structpb.NewStruct(map[string]any{"number": "X"})
				_, err := res.TestFlow(ctx, &controlplanev1.TestFlowRequest{Tenant: "globex", Flow: "orders", Record: record, Key: "X"})
				return err
			}},
		},
		controlplanev1connect.ResourceServiceSyncFlowProcedure: {
			{"poll globex's source from the start", false, func(ctx context.Context) error {
				_, err := res.SyncFlow(ctx, &controlplanev1.SyncFlowRequest{Tenant: "globex", Flow: "orders", FromStart: true})
				return err
			}},
		},
		eventlogv1connect.LogServiceQueryLogsProcedure: {
			{"query globex's log", false, func(ctx context.Context) error {
				_, err := logs.QueryLogs(ctx, &eventlogv1.QueryLogsRequest{Tenant: "globex"})
				return err
			}},
			{"query its own log for globex's remote id", true, func(ctx context.Context) error {
				resp, err := logs.QueryLogs(ctx, &eventlogv1.QueryLogsRequest{RemoteId: "broken"})
				return leaks(resp, err, "broken")
			}},
		},
		eventlogv1connect.LogServiceReportProcedure: {
			{"globex's report", false, func(ctx context.Context) error {
				_, err := logs.Report(ctx, &eventlogv1.ReportRequest{Tenant: "globex"})
				return err
			}},
		},
		eventlogv1connect.LogServiceReportProvidersProcedure: {
			{"globex's providers report", false, func(ctx context.Context) error {
				_, err := logs.ReportProviders(ctx, &eventlogv1.ReportProvidersRequest{Tenant: "globex"})
				return err
			}},
			{"its own providers report", true, func(ctx context.Context) error {
				resp, err := logs.ReportProviders(ctx, &eventlogv1.ReportProvidersRequest{})
				return leaks(resp, err, "globex")
			}},
		},
		eventlogv1connect.DeadLetterServiceListDeadLettersProcedure: {
			{"list globex's dead letters", false, func(ctx context.Context) error {
				_, err := letters.ListDeadLetters(ctx, &eventlogv1.ListDeadLettersRequest{Filter: &eventlogv1.DeadLetterFilter{Tenant: "globex"}})
				return err
			}},
			{"list its own for globex's letter", true, func(ctx context.Context) error {
				resp, err := letters.ListDeadLetters(ctx, &eventlogv1.ListDeadLettersRequest{Filter: &eventlogv1.DeadLetterFilter{RemoteId: "broken"}})
				return leaks(resp, err, letter.Id)
			}},
		},
		eventlogv1connect.DeadLetterServiceGetDeadLetterProcedure: {
			{"get globex's letter in globex", false, func(ctx context.Context) error {
				_, err := letters.GetDeadLetter(ctx, &eventlogv1.GetDeadLetterRequest{Tenant: "globex", Id: letter.Id, IncludeRecord: true})
				return err
			}},
			{"get globex's letter by its id", false, func(ctx context.Context) error {
				_, err := letters.GetDeadLetter(ctx, &eventlogv1.GetDeadLetterRequest{Id: letter.Id, IncludeRecord: true})
				return err
			}},
		},
		eventlogv1connect.DeadLetterServiceEditDeadLetterProcedure: {
			{"edit globex's letter in globex", false, func(ctx context.Context) error {
				_, err := letters.EditDeadLetter(ctx, &eventlogv1.EditDeadLetterRequest{Tenant: "globex", Id: letter.Id, Record: `{"number":"X"}`})
				return err
			}},
			{"edit globex's letter by its id", false, func(ctx context.Context) error {
				_, err := letters.EditDeadLetter(ctx, &eventlogv1.EditDeadLetterRequest{Id: letter.Id, Record: `{"number":"X"}`})
				return err
			}},
		},
		eventlogv1connect.DeadLetterServiceReplayDeadLettersProcedure: {
			{"replay globex's letter in globex", false, func(ctx context.Context) error {
				_, err := letters.ReplayDeadLetters(ctx, &eventlogv1.ReplayDeadLettersRequest{Tenant: "globex", Ids: []string{letter.Id}})
				return err
			}},
			{"replay globex's letter by its id", false, func(ctx context.Context) error {
				_, err := letters.ReplayDeadLetters(ctx, &eventlogv1.ReplayDeadLettersRequest{Ids: []string{letter.Id}})
				return err
			}},
			{"replay by a filter naming globex", false, func(ctx context.Context) error {
				_, err := letters.ReplayDeadLetters(ctx, &eventlogv1.ReplayDeadLettersRequest{Filter: &eventlogv1.DeadLetterFilter{Tenant: "globex", Flow: "orders"}})
				return err
			}},
		},
		eventlogv1connect.DeadLetterServiceDiscardDeadLettersProcedure: {
			{"discard globex's letter in globex", false, func(ctx context.Context) error {
				_, err := letters.DiscardDeadLetters(ctx, &eventlogv1.DiscardDeadLettersRequest{Tenant: "globex", Ids: []string{letter.Id}})
				return err
			}},
			{"discard globex's letter by its id", false, func(ctx context.Context) error {
				_, err := letters.DiscardDeadLetters(ctx, &eventlogv1.DiscardDeadLettersRequest{Ids: []string{letter.Id}})
				return err
			}},
		},
		ingestv1connect.IngestServicePublishProcedure: {
			{"publish into globex", false, func(ctx context.Context) error {
				_, err := in.Publish(ctx, &ingestv1.PublishRequest{Changes: []*ingestv1.Change{{Tenant: "globex", Endpoint: "shop", Entity: "order", Key: "intruder", Record: string(order(5, "paid"))}}})
				return err
			}},
			{"ask what globex's flows read", false, func(ctx context.Context) error {
				_, err := in.Publish(ctx, &ingestv1.PublishRequest{CheckOnly: true, Changes: []*ingestv1.Change{{Tenant: "globex", Endpoint: "shop", Entity: "invoice", Key: "probe", Record: `{}`}}})
				return err
			}},
		},
	}

	// The contract: every method has its cases.
	for _, fd := range []protoreflect.FileDescriptor{
		controlplanev1.File_syncline_controlplane_v1_controlplane_proto,
		eventlogv1.File_syncline_eventlog_v1_eventlog_proto,
		eventlogv1.File_syncline_eventlog_v1_deadletters_proto,
		ingestv1.File_syncline_ingest_v1_ingest_proto,
	} {
		for i := range fd.Services().Len() {
			svc := fd.Services().Get(i)
			for j := range svc.Methods().Len() {
				procedure := "/" + string(svc.FullName()) + "/" + string(svc.Methods().Get(j).Name())
				if len(cases[procedure]) == 0 {
					t.Errorf("%s has no isolation case: add what another tenant's token could try with it", procedure)
				}
			}
		}
	}

	procedures := slices.Sorted(func(yield func(string) bool) {
		for p := range cases {
			if !yield(p) {
				return
			}
		}
	})
	for _, procedure := range procedures {
		for _, a := range cases[procedure] {
			err := a.call(ctx)
			switch code := connect.CodeOf(err); {
			case a.own:
				if err != nil {
					t.Errorf("%s (%s): %v", procedure, a.what, err)
				}
			case err == nil:
				t.Errorf("%s (%s): done, want refused", procedure, a.what)
			case code != connect.CodePermissionDenied && code != connect.CodeNotFound:
				t.Errorf("%s (%s): %v, want PermissionDenied or NotFound", procedure, a.what, err)
			case strings.Contains(err.Error(), "broken") || strings.Contains(err.Error(), "SO-"):
				t.Errorf("%s (%s): the refusal quotes globex's data: %v", procedure, a.what, err)
			}
		}
	}

	// A marker after the tries: once it is logged, anything a try had let
	// into the pipeline would be too.
	e.publish(ingest.Change{Tenant: "globex", Endpoint: "shop", Entity: "order", Key: "marker", Version: 1, Payload: order(9, "paid")})
	eventually(t, 30*time.Second, func() string {
		if len(e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "globex", RemoteId: "marker"})) != 1 {
			return "globex's marker is not logged yet"
		}
		return ""
	})
	after := globexState(t, e)
	after.logs--
	if after != before {
		t.Errorf("globex after acme's tries: %+v, before: %+v", after, before)
	}
	// globex's token still works: it was neither rotated nor revoked.
	if _, err := e.logsAs(tokens["globex"]).QueryLogs(ctx, &eventlogv1.QueryLogsRequest{}); err != nil {
		t.Errorf("globex's own token after acme's tries: %v", err)
	}
}

// state is what another tenant's tries could change of a tenant.
type state struct {
	resources string
	logs      int
	letters   string
}

func globexState(t *testing.T, e *env) state {
	t.Helper()
	ctx := context.Background()
	var s state
	for _, kind := range []string{"Tenant", "Integrator", "Endpoint", "Flow"} {
		resp, err := e.resource.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: kind, Tenant: "globex"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.Resources {
			if kind == "Tenant" && r.GetMetadata().GetName() != "globex" {
				continue
			}
			r.Status = nil
			s.resources += protojson.Format(r)
		}
	}
	s.logs = len(e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "globex"}))
	admin := eventlogv1connect.NewDeadLetterServiceClient(http.DefaultClient, e.in.APIURL(), connect.WithInterceptors(auth.Bearer(e.in.AdminToken())))
	resp, err := admin.ListDeadLetters(ctx, &eventlogv1.ListDeadLettersRequest{Filter: &eventlogv1.DeadLetterFilter{Tenant: "globex"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range resp.Letters {
		s.letters += l.Id + " " + l.State + ";"
	}
	return s
}

// leaks is nil when resp holds nothing that says secret, and an error of
// the call's own otherwise.
func leaks(resp interface{ String() string }, err error, secret string) error {
	if err != nil {
		return err
	}
	if strings.Contains(resp.String(), secret) {
		return fmt.Errorf("the answer holds %q: %s", secret, resp)
	}
	return nil
}
