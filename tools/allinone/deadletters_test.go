package allinone_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/ingest"
)

// TestDeadLettersReplay: failed events are kept sealed, listed, shown on
// request (and that is logged), edited, replayed through the ledger once
// the cause is fixed — never twice into the target — and discarded.
func TestDeadLettersReplay(t *testing.T) {
	dir := t.TempDir()
	dsn := tenantFile(t, dir, "acme", "erp.db")
	db := ordersTableWithoutTotal(t, dsn)
	logs := &syncBuffer{}
	e := start(t, options{dir: dir, driver: "sqlite", dsn: dsn, logger: slog.New(slog.NewJSONHandler(logs, nil))})
	ctx := context.Background()
	_, err := e.resource.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		resourceOf(t, "Tenant", "", "acme", map[string]any{}),
		resourceOf(t, "Integrator", "acme", "sync", map[string]any{}),
		resourceOf(t, "Endpoint", "acme", "shop", map[string]any{"type": "nats", "description": "webshop"}),
		resourceOf(t, "Endpoint", "acme", "erp", map[string]any{"type": "sql", "description": "ERP", "settings": map[string]any{
			"driver": "sqlite", "dsn": dsn, "table": "orders"}}),
		resourceOf(t, "Flow", "acme", "orders", map[string]any{"integrator": "sync", "source": "shop", "target": "erp", "entity": "order",
			"mapping": map[string]any{"fields": map[string]any{"order_number": "source.number", "total": "double(source.total)"}, "exclude": []any{"*"}}}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	letters := eventlogv1connect.NewDeadLetterServiceClient(http.DefaultClient, e.in.APIURL(), connect.WithInterceptors(auth.Bearer(e.in.AdminToken())))
	e.publish(
		ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "R1", Version: 1, Payload: []byte(`{"number":"SO-1","total":10.5,"secret_note":"porcelain-7731"}`)},
		ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "M1", Version: 1, Payload: []byte(`{"number":"SO-2","total":"ten"}`)},
	)
	var list []*eventlogv1.DeadLetter
	eventually(t, 30*time.Second, func() string {
		resp, err := letters.ListDeadLetters(ctx, &eventlogv1.ListDeadLettersRequest{Filter: &eventlogv1.DeadLetterFilter{Tenant: "acme"}})
		if err != nil {
			return err.Error()
		}
		list = resp.Letters
		if len(list) != 2 {
			return fmt.Sprintf("%d dead letters, want 2", len(list))
		}
		return ""
	})
	byKey := map[string]*eventlogv1.DeadLetter{}
	for _, l := range list {
		byKey[l.RemoteId] = l
	}
	refused, unmapped := byKey["R1"], byKey["M1"]
	if refused.GetStage() != "connector" || refused.Code != "target_rejected" || unmapped.GetStage() != "mapper" || unmapped.Code != "mapping_failed" {
		t.Fatalf("dead letters: %v", list)
	}

	// Sealed at rest: the store holds no record text.
	ev, err := sql.Open("sqlite", dir+"/eventlog.db")
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	var sealed string
	if err := ev.QueryRow(`SELECT sealed FROM dead_letters WHERE id = ?`, refused.Id).Scan(&sealed); err != nil || sealed == "" || strings.Contains(sealed, "porcelain") {
		t.Fatalf("the stored dead letter: %q, %v; want it sealed", sealed, err)
	}
	// Shown only on request, and the showing is logged.
	got, err := letters.GetDeadLetter(ctx, &eventlogv1.GetDeadLetterRequest{Tenant: "acme", Id: refused.Id})
	if err != nil || got.Record != "" {
		t.Fatalf("get without the flag: %v, %v; want no record", got, err)
	}
	got, err = letters.GetDeadLetter(ctx, &eventlogv1.GetDeadLetterRequest{Tenant: "acme", Id: refused.Id, IncludeRecord: true})
	if err != nil || !strings.Contains(got.Record, `"order_number":"SO-1"`) {
		t.Fatalf("get with the flag: %v, %v; want the mapped record", got, err)
	}
	if !strings.Contains(logs.String(), "dead letter record shown") || !strings.Contains(logs.String(), refused.Id) {
		t.Error("showing a dead letter's record was not logged")
	}

	// The cause is fixed: replay by filter sends the refused one again, once.
	if _, err := db.Exec(`ALTER TABLE orders ADD COLUMN total NUMERIC`); err != nil {
		t.Fatal(err)
	}
	rep, err := letters.ReplayDeadLetters(ctx, &eventlogv1.ReplayDeadLettersRequest{Tenant: "acme", Filter: &eventlogv1.DeadLetterFilter{Stage: "connector"}})
	if err != nil || len(rep.Replayed) != 1 || rep.Replayed[0].EventId == refused.EventId {
		t.Fatalf("replay: %v, %v; want one letter sent as a new event", rep, err)
	}
	eventually(t, 30*time.Second, func() string {
		if _, ok := userRows(db)["R1"]; !ok {
			return "the replayed record never reached the target"
		}
		return ""
	})
	// A second replay goes through the ledger and changes nothing.
	rep2, err := letters.ReplayDeadLetters(ctx, &eventlogv1.ReplayDeadLettersRequest{Tenant: "acme", Ids: []string{refused.Id}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: "R1"})
		actions := map[string]string{}
		for _, r := range recs {
			actions[r.EventId] = r.Action
		}
		if actions[rep.Replayed[0].EventId] != "created" || actions[rep2.Replayed[0].EventId] != "skipped" {
			return fmt.Sprintf("log of R1 by event: %v; want the first replay created and the second skipped", actions)
		}
		return ""
	})
	var rows int
	if err := db.QueryRow(`SELECT count(*) FROM orders WHERE external_ref = 'R1'`).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("R1 has %d rows in the target (%v), want 1", rows, err)
	}

	// The record the mapper could not map is corrected, then replayed.
	if _, err := letters.EditDeadLetter(ctx, &eventlogv1.EditDeadLetterRequest{Tenant: "acme", Id: unmapped.Id, Record: `{"number":"SO-2","total":10}`}); err != nil {
		t.Fatal(err)
	}
	if _, err := letters.EditDeadLetter(ctx, &eventlogv1.EditDeadLetterRequest{Tenant: "acme", Id: unmapped.Id, Record: `not json`}); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("editing with a record that is not JSON: %v, want InvalidArgument", err)
	}
	if _, err := letters.ReplayDeadLetters(ctx, &eventlogv1.ReplayDeadLettersRequest{Tenant: "acme", Ids: []string{unmapped.Id}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		if _, ok := userRows(db)["M1"]; !ok {
			return "the corrected record never reached the target"
		}
		return ""
	})

	// A replay must say what to replay: a filter with nothing in it is refused.
	if _, err := letters.ReplayDeadLetters(ctx, &eventlogv1.ReplayDeadLettersRequest{Tenant: "acme", Filter: &eventlogv1.DeadLetterFilter{}}); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("a replay with an empty filter: %v, want InvalidArgument", err)
	}
	// A discard naming one letter that does not exist discards none.
	if _, err := letters.DiscardDeadLetters(ctx, &eventlogv1.DiscardDeadLettersRequest{Tenant: "acme", Ids: []string{refused.Id, "dlq:nope"}}); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("discarding a missing letter: %v, want NotFound", err)
	}
	if got, err := letters.GetDeadLetter(ctx, &eventlogv1.GetDeadLetterRequest{Tenant: "acme", Id: refused.Id}); err != nil || got.Letter.State != "replayed" {
		t.Errorf("after a refused discard the letter is %v (%v), want it still replayed", got.GetLetter().GetState(), err)
	}

	// Discarded: the event is gone.
	if _, err := letters.DiscardDeadLetters(ctx, &eventlogv1.DiscardDeadLettersRequest{Tenant: "acme", Ids: []string{refused.Id}}); err != nil {
		t.Fatal(err)
	}
	_, err = letters.GetDeadLetter(ctx, &eventlogv1.GetDeadLetterRequest{Tenant: "acme", Id: refused.Id, IncludeRecord: true})
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "discarded") {
		t.Errorf("the record of a discarded letter: %v", err)
	}
	// Another tenant's token sees none of it.
	rot, err := e.resource.RotateToken(ctx, &controlplanev1.RotateTokenRequest{Tenant: "acme", Integrator: "sync"})
	if err != nil {
		t.Fatal(err)
	}
	own := eventlogv1connect.NewDeadLetterServiceClient(http.DefaultClient, e.in.APIURL(), connect.WithInterceptors(auth.Bearer(rot.Token)))
	if _, err := own.ListDeadLetters(ctx, &eventlogv1.ListDeadLettersRequest{Filter: &eventlogv1.DeadLetterFilter{Tenant: "globex"}}); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("acme's token listing globex's dead letters: %v, want PermissionDenied", err)
	}
	if _, err := own.ReplayDeadLetters(ctx, &eventlogv1.ReplayDeadLettersRequest{Tenant: "globex", Ids: []string{"x"}}); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("acme's token replaying globex's dead letters: %v, want PermissionDenied", err)
	}
	// A replay filter naming another tenant is refused, never read as the
	// caller's own.
	spoofed := &eventlogv1.ReplayDeadLettersRequest{Filter: &eventlogv1.DeadLetterFilter{Tenant: "globex", Flow: "orders"}}
	if _, err := own.ReplayDeadLetters(ctx, spoofed); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("acme's token replaying with filter.tenant globex: %v, want PermissionDenied", err)
	}
	spoofed.Tenant = "acme"
	if _, err := letters.ReplayDeadLetters(ctx, spoofed); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "filter.tenant") {
		t.Errorf("the admin replaying acme's letters with filter.tenant globex: %v, want InvalidArgument naming filter.tenant", err)
	}
	if resp, err := own.ListDeadLetters(ctx, &eventlogv1.ListDeadLettersRequest{}); err != nil || len(resp.Letters) != 2 {
		t.Errorf("acme's token listing its own dead letters: %v, %v", resp, err)
	}
}
