package connector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	ingestv1 "github.com/syncline/syncline/pkg/api/syncline/ingest/v1"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/bus"
	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/mapping"
	"github.com/syncline/syncline/pkg/natstest"
	"github.com/syncline/syncline/services/connector/connector"
)

// FuzzIngestRequest sends arbitrary request bodies to the ingest API, in
// JSON and in protobuf, as anyone with a token may (seeds in
// testdata/fuzz/FuzzIngestRequest). Whatever arrives, the API answers (never
// panics), and the answer is either the event ids of every change (none when
// it only asks) or a refusal that is the caller's to fix: never an internal
// error or an outage, which a client would retry forever.
func FuzzIngestRequest(f *testing.F) {
	const token = "sla_fuzz-admin-token-0123456789"
	url := startIngestAPI(f, token)
	refusals := map[string]bool{"invalid_argument": true, "not_found": true, "failed_precondition": true, "resource_exhausted": true}

	f.Fuzz(func(t *testing.T, body []byte, binary bool) {
		contentType := "application/json"
		if binary {
			contentType = "application/proto"
		}
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		answer, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			var e struct{ Code, Message string }
			if err := json.Unmarshal(answer, &e); err != nil || !refusals[e.Code] || e.Message == "" {
				t.Fatalf("request %q answered %d %s: want a refusal with a message", body, resp.StatusCode, answer)
			}
			return
		}
		var in ingestv1.PublishRequest
		var out ingestv1.PublishResponse
		// connect ignores unknown JSON fields, as protobuf does unknown
		// fields.
		unmarshal := protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal
		if binary {
			unmarshal = proto.Unmarshal
		}
		if err := unmarshal(body, &in); err != nil {
			t.Fatalf("request %q was accepted, but does not decode: %v", body, err)
		}
		if err := unmarshal(answer, &out); err != nil {
			t.Fatalf("answer %q does not decode: %v", answer, err)
		}
		want := len(in.Changes)
		if in.CheckOnly {
			want = 0
		}
		if len(out.EventIds) != want || len(in.Changes) == 0 {
			t.Fatalf("request %q with %d changes (check only: %v) answered with %d event ids", body, len(in.Changes), in.CheckOnly, len(out.EventIds))
		}
	})
}

// startIngestAPI serves the connector's ingest API, as the services mount
// it, for tenant acme with one flow reading orders from shop, and returns
// its Publish URL.
func startIngestAPI(tb testing.TB, token string) string {
	ctx := context.Background()
	s := natstest.Run(tb)
	_, js := natstest.Connect(tb, s)
	if err := bus.EnsureStreams(ctx, js, bus.DefaultConfig()); err != nil {
		tb.Fatal(err)
	}
	kv, err := flowconfig.OpenBucket(ctx, js, 1)
	if err != nil {
		tb.Fatal(err)
	}
	f := &flowconfig.Flow{Tenant: "acme", Name: "orders", Generation: 1, Entity: "order", Integrator: "sync",
		Source: flowconfig.Endpoint{Name: "shop", Type: "nats"}, Target: flowconfig.Endpoint{Name: "erp", Type: "sql"},
		Mapping: mapping.Spec{Fields: map[string]string{"n": "source.n"}}, Duplicates: flowconfig.DuplicateUpdate}
	b, err := flowconfig.Encode(f)
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range map[string][]byte{f.Key(): b, flowconfig.TenantKey("acme"): []byte("{}")} {
		if _, err := kv.Put(ctx, k, v); err != nil {
			tb.Fatal(err)
		}
	}
	w := flowconfig.NewWatcher(kv, nil)
	if err := w.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = w.Stop(context.Background()) })
	egress, err := sdk.NewEgress(sdk.EgressConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	svc, err := connector.New(connector.Deps{JetStream: js, Flows: w.Index(), Connectors: sdk.NewRegistry(), Bus: bus.DefaultConfig(), Egress: egress})
	if err != nil {
		tb.Fatal(err)
	}
	authn, err := auth.NewAuthenticator(token, nil)
	if err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Mount(mux)
	srv := httptest.NewServer(authn.Handler(mux))
	tb.Cleanup(srv.Close)
	return srv.URL + "/syncline.ingest.v1.IngestService/Publish"
}
