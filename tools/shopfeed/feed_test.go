package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/connectors/rest/jsonservertest"
	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/api/syncline/ingest/v1/ingestv1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/natsauth"
	"github.com/syncline/syncline/pkg/resourcefile"
	"github.com/syncline/syncline/tools/allinone"
)

// resources are a webshop whose categories go into a table of an SQLite database, with a
// rule that refuses the category "Bad", and whose stock levels go through an integrator that
// is inactive, so that they are held and have no outcome.
const resources = `
apiVersion: syncline.dev/v1
kind: Tenant
metadata: {name: acme}
spec: {}
---
apiVersion: syncline.dev/v1
kind: Integrator
metadata: {tenant: acme, name: shop-to-erp}
spec: {stage: active}
---
apiVersion: syncline.dev/v1
kind: Integrator
metadata: {tenant: acme, name: later}
spec: {stage: inactive}
---
apiVersion: syncline.dev/v1
kind: Endpoint
metadata: {tenant: acme, name: shop}
spec: {type: nats, description: the webshop}
---
apiVersion: syncline.dev/v1
kind: Endpoint
metadata: {tenant: acme, name: erp}
spec:
  type: sql
  description: the ERP's tables
  settings: {driver: sqlite, dsn: erp.db, table: categories, create_table: true}
---
apiVersion: syncline.dev/v1
kind: Flow
metadata: {tenant: acme, name: categories}
spec:
  integrator: shop-to-erp
  source: shop
  target: erp
  entity: category
  mapping:
    exclude: ["*"]
    fields: {name: source.name}
    validations:
      - {field: name, check: value != "Bad", message: the ERP takes no category named Bad}
---
apiVersion: syncline.dev/v1
kind: Flow
metadata: {tenant: acme, name: stock}
spec:
  integrator: later
  source: shop
  target: erp
  entity: stock
  mapping:
    exclude: ["*"]
    fields: {sku: source.sku}
`

// TestFeedWaitsForOutcomes feeds a real json-server's collections into a running Syncline
// (the all-in-one mode) page by page, and reports each collection's outcomes from the API
// log: created records, a failure with its key and reason (and errFailed), and, for a
// collection whose flow holds its events, an error after the wait naming the keys that
// have no outcome yet.
func TestFeedWaitsForOutcomes(t *testing.T) {
	shopSrv, err := jsonservertest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(shopSrv.Stop)
	updated := "2026-12-01T09:30:00+01:00"
	shopSrv.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{
		"categories": {
			{"id": 1, "name": "Clothing", "updated_at": updated},
			{"id": 2, "name": "T-Shirts", "updated_at": updated},
			{"id": 3, "name": "Bad", "updated_at": updated},
			{"id": 4, "name": "Home", "updated_at": updated},
			{"id": 5, "name": "Mugs", "updated_at": updated},
		},
		"stock": {{"id": "s-1", "sku": "MG-500", "updated_at": updated}},
	}})

	f := startFeeder(t, shopSrv.URL)
	var out bytes.Buffer
	f.out = &out
	err = f.feed(t.Context(), []collection{{Name: "categories", Entity: "category"}})
	if !errors.Is(err, errFailed) {
		t.Fatalf("feeding the categories: %v, want errFailed\n%s", err, &out)
	}
	for _, want := range []string{
		"categories: 5 records published as category changes\n",
		"categories: 1 failed, 4 created\n",
		"category 3 failed in flow categories: ",
		"the ERP takes no category named Bad",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the feed's report lacks %q:\n%s", want, &out)
		}
	}

	out.Reset()
	f.wait = 2 * time.Second
	err = f.feed(t.Context(), []collection{{Name: "stock", Entity: "stock"}})
	if err == nil || !strings.Contains(err.Error(), "stock: 1 of 1 changes have no outcome in the API log after 2s (keys s-1)") {
		t.Errorf("feeding stock whose flow holds its events: %v, want the key that has no outcome", err)
	}
}

// TestFeedRefusesWhatNoFlowReads: a collection of an entity that no flow reads is refused
// by the ingest API before anything is published, naming what the tenant's flows read.
func TestFeedRefusesWhatNoFlowReads(t *testing.T) {
	shopSrv, err := jsonservertest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(shopSrv.Stop)
	shopSrv.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{
		"orders": {{"id": 1001, "number": "1001", "updated_at": "2026-12-01T09:30:00Z"}},
	}})
	f := startFeeder(t, shopSrv.URL)
	err = f.feed(t.Context(), []collection{{Name: "orders", Entity: "order"}})
	if err == nil || !strings.Contains(err.Error(), "the ingest API refuses the orders records") || !strings.Contains(err.Error(), "category from shop") {
		t.Errorf("feeding orders that no flow reads: %v, want the ingest API's refusal naming what the flows read", err)
	}
}

// startFeeder runs Syncline's all-in-one mode with resources applied and returns a feeder
// of the webshop at shopURL into it, as the admin, waiting up to a minute per collection.
func startFeeder(t *testing.T, shopURL string) *feeder {
	t.Helper()
	in, err := allinone.New(allinone.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", NATSPort: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := in.Start(ctx); err != nil {
		t.Fatalf("starting Syncline: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := in.Stop(ctx); err != nil {
			t.Errorf("stopping Syncline: %v", err)
		}
	})
	opts := []connect.ClientOption{connect.WithProtoJSON(), connect.WithInterceptors(auth.Bearer(in.AdminToken()))}
	rs, err := resourcefile.Parse("resources.yaml", []byte(resources))
	if err != nil {
		t.Fatal(err)
	}
	cp := controlplanev1connect.NewResourceServiceClient(http.DefaultClient, in.APIURL(), opts...)
	if _, err := cp.Apply(t.Context(), &controlplanev1.ApplyRequest{Resources: rs}); err != nil {
		t.Fatalf("applying: %v", err)
	}
	nc, err := nats.Connect(in.NATSURL(), natsauth.ClientOptions(in.AdminToken())...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &feeder{
		shop:   &shop{base: shopURL, client: http.DefaultClient, pageSize: 2},
		source: source{Tenant: "acme", Endpoint: "shop", Updated: "updated_at"},
		pub:    ingest.NewPublisher(js, nil),
		ingest: ingestv1connect.NewIngestServiceClient(http.DefaultClient, in.APIURL(), opts...),
		logs:   eventlogv1connect.NewLogServiceClient(http.DefaultClient, in.APIURL(), opts...),
		wait:   time.Minute,
		poll:   50 * time.Millisecond,
		out:    io.Discard,
	}
}

// TestChangeKeysAndVersions: a record's id (a number or a text) is its key and its
// updated-at its version in milliseconds; a record without either is refused, naming the
// collection, the record and the field.
func TestChangeKeysAndVersions(t *testing.T) {
	src := source{Tenant: "acme", Endpoint: "shop", Updated: "updated_at"}
	c := collection{Name: "products", Entity: "product"}
	tests := []struct {
		record, key string
		version     int64
		err         string
	}{
		{`{"id": 11, "updated_at": "2026-12-01T09:30:00+01:00"}`, "11", time.Date(2026, 12, 1, 8, 30, 0, 0, time.UTC).UnixMilli(), ""},
		{`{"id": "TS-100", "updated_at": "2026-12-01T08:30:00.250Z"}`, "TS-100", time.Date(2026, 12, 1, 8, 30, 0, 250e6, time.UTC).UnixMilli(), ""},
		{`{"updated_at": "2026-12-01T08:30:00Z"}`, "", 0, "products, record 1: id: missing: every record needs an id"},
		{`{"id": true, "updated_at": "2026-12-01T08:30:00Z"}`, "", 0, "products, record 1: id: true is neither a number nor a text"},
		{`{"id": 11}`, "", 0, "products, record 1 (id 11): updated_at: missing (-updated names the field"},
		{`{"id": 11, "updated_at": "2026-12-01 08:30"}`, "", 0, `updated_at: "2026-12-01 08:30" is not an RFC 3339 time`},
		{`[1, 2]`, "", 0, "products, record 1: not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.record, func(t *testing.T) {
			ch, err := src.change(c, 0, json.RawMessage(tt.record))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("change: %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ch.Key != tt.key || ch.Version != tt.version || ch.Entity != "product" || ch.Tenant != "acme" || ch.Endpoint != "shop" || string(ch.Payload) != tt.record {
				t.Errorf("change = %+v, want key %s, version %d, the record as its payload", ch, tt.key, tt.version)
			}
		})
	}
	if _, err := parseCollections("products=product,products=stock"); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q is named twice", "products")) {
		t.Errorf("a collection named twice: %v", err)
	}
}
