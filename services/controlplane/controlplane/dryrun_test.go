package controlplane_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"
	_ "modernc.org/sqlite"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
)

func TestEndpointTest(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	rs := orders(t, map[string]any{"number": "source.number"})
	rs = append(rs, res(t, "Endpoint", "acme", "archive", map[string]any{"type": "sql", "description": "an archive table nobody made",
		"settings": map[string]any{"driver": "sqlite", "dsn": "archive.db", "table": "old_orders"}}))
	if _, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: rs}); err != nil {
		t.Fatal(err)
	}

	resp, err := f.client.TestEndpoint(ctx, &controlplanev1.TestEndpointRequest{Tenant: "acme", Name: "erp"})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Ok || len(resp.Entities) != 1 || !strings.Contains(resp.Entities[0], "any entity: find by external_ref; read; create; update; delete") {
		t.Errorf("erp: ok %v, %q, entities %q; want ok and what the sql target serves", resp.Ok, resp.Message, resp.Entities)
	}

	resp, err = f.client.TestEndpoint(ctx, &controlplanev1.TestEndpointRequest{Tenant: "acme", Name: "archive"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Ok || !strings.Contains(resp.Message, `table "old_orders" (settings.table) does not exist`) {
		t.Errorf("archive: ok %v, %q; want it failed, naming the missing table", resp.Ok, resp.Message)
	}

	for _, tt := range []struct {
		name string
		code connect.Code
		want string
	}{
		{"shop", connect.CodeFailedPrecondition, "a nats endpoint is a source"},
		{"nowhere", connect.CodeNotFound, "nowhere"},
	} {
		_, err := f.client.TestEndpoint(ctx, &controlplanev1.TestEndpointRequest{Tenant: "acme", Name: tt.name})
		var ce *connect.Error
		if !errors.As(err, &ce) || ce.Code() != tt.code || !strings.Contains(ce.Message(), tt.want) {
			t.Errorf("testing %s = %v, want %v saying %q", tt.name, err, tt.code, tt.want)
		}
	}
}

func TestFlowTest(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	rs := orders(t, nil)
	rs[4] = res(t, "Flow", "acme", "orders", map[string]any{"integrator": "sync", "source": "shop", "target": "erp", "entity": "order",
		"duplicates": "update", "keyField": "number", "writeModes": map[string]any{"note": "create_only"},
		"mapping": map[string]any{"filter": "source.total > 0", "exclude": []any{"*"},
			"fields": map[string]any{"number": "source.number", "total": "double(source.total)", "note": "source.note"}}})
	if _, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: rs}); err != nil {
		t.Fatal(err)
	}
	try := func(record map[string]any) *controlplanev1.TestFlowResponse {
		t.Helper()
		s, err := structpb.NewStruct(record)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := f.client.TestFlow(ctx, &controlplanev1.TestFlowRequest{Tenant: "acme", Flow: "orders", Record: s})
		if err != nil {
			t.Fatalf("TestFlow: %v", err)
		}
		return resp
	}

	resp := try(map[string]any{"number": "SO-1", "total": 10, "note": "gift"})
	if resp.Action != "created" || resp.Key != "SO-1" || resp.Mapped.AsMap()["total"] != 10.0 {
		t.Errorf("a record the target lacks: %s, key %q, mapped %v; want created SO-1 with total 10", resp.Action, resp.Key, resp.Mapped.AsMap())
	}

	// A row put into the table by hand: an update, whose changes leave out the
	// create_only note.
	db, err := sql.Open("sqlite", filepath.Join(f.data, "tenants", "acme", "erp.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// A test writes nothing: the table the target creates on its first push
	// is not there yet.
	var tables int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'orders'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("after a test, %d tables orders (%v): a test must create nothing", tables, err)
	}
	if _, err := db.Exec(`CREATE TABLE orders (external_ref TEXT PRIMARY KEY, number TEXT, total NUMERIC, note TEXT);
		INSERT INTO orders VALUES ('SO-1', 'SO-1', 5, 'by hand')`); err != nil {
		t.Fatal(err)
	}
	resp = try(map[string]any{"number": "SO-1", "total": 10, "note": "gift"})
	if resp.Action != "updated" || resp.TargetId != "SO-1" || len(resp.Changes) != 1 || resp.Changes[0].Field != "total" ||
		resp.Changes[0].Current.GetNumberValue() != 5 || resp.Changes[0].New.GetNumberValue() != 10 {
		t.Errorf("a record the target holds: %s %q, changes %v; want updated SO-1 changing total 5 -> 10 only", resp.Action, resp.TargetId, resp.Changes)
	}
	var total float64
	var note string
	if err := db.QueryRow(`SELECT total, note FROM orders WHERE external_ref = 'SO-1'`).Scan(&total, &note); err != nil || total != 5 || note != "by hand" {
		t.Errorf("the target's row is %v/%q (%v): a test must write nothing", total, note, err)
	}

	resp = try(map[string]any{"number": "SO-2", "total": 0})
	if resp.Action != "skipped" || resp.Code != "filtered_out" {
		t.Errorf("a record the filter drops: %s %s %q", resp.Action, resp.Code, resp.Reason)
	}
	resp = try(map[string]any{"total": 3})
	if resp.Action != "skipped" || resp.Code != "no_key" || !strings.Contains(resp.Reason, "number") {
		t.Errorf("a record without its key: %s %s %q", resp.Action, resp.Code, resp.Reason)
	}
	resp = try(map[string]any{"number": "SO-3", "total": "lots"})
	if resp.Action != "failed" || resp.Code != "mapping_failed" {
		t.Errorf("a record the mapping fails on: %s %s %q", resp.Action, resp.Code, resp.Reason)
	}

	_, err = f.client.TestFlow(ctx, &controlplanev1.TestFlowRequest{Tenant: "acme", Flow: "orders"})
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || !strings.Contains(ce.Message(), "a sample source record is required") {
		t.Errorf("no record: %v", err)
	}
	// A sample gets the checks a published record gets: at most 512 KiB, a key that fits.
	big, _ := structpb.NewStruct(map[string]any{"number": "SO-9", "total": 1, "note": strings.Repeat("x", 600<<10)})
	_, err = f.client.TestFlow(ctx, &controlplanev1.TestFlowRequest{Tenant: "acme", Flow: "orders", Record: big})
	if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || !strings.Contains(ce.Message(), "record") {
		t.Errorf("a 600 KiB record: %v, want it refused naming the record", err)
	}
	small, _ := structpb.NewStruct(map[string]any{"total": 1})
	_, err = f.client.TestFlow(ctx, &controlplanev1.TestFlowRequest{Tenant: "acme", Flow: "orders", Record: small, Key: strings.Repeat("k", 2000)})
	if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || !strings.Contains(ce.Message(), "key") {
		t.Errorf("a 2,000-byte key: %v, want it refused naming the key", err)
	}
	_, err = f.client.TestFlow(ctx, &controlplanev1.TestFlowRequest{Tenant: "acme", Flow: "invoices", Record: &structpb.Struct{}})
	if !errors.As(err, &ce) || ce.Code() != connect.CodeNotFound {
		t.Errorf("no such flow: %v", err)
	}
}
