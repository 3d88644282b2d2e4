package connector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/connectors/webhook"
	"github.com/syncline/syncline/pkg/bus"
	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/mapping"
	"github.com/syncline/syncline/pkg/natstest"
	"github.com/syncline/syncline/pkg/secret"
	"github.com/syncline/syncline/services/connector/connector"
)

const hookSecret = "whsec-0123456789abcdef0123456789ab"

// hookRig is a connector service's webhook receiver on a real embedded NATS
// server, behind the same authenticator-free mux the services give it, with
// tenant acme's flows: orders from the webhook endpoint shop (hmac), products
// from the webhook endpoint pim (token, an array of records), and invoices
// from the nats endpoint feed.
type hookRig struct {
	t   *testing.T
	url string
	js  jetstream.JetStream
}

func startHooks(t *testing.T) *hookRig {
	t.Helper()
	return startHooksWith(t, bus.DefaultConfig())
}

func startHooksWith(t *testing.T, cfg bus.Config) *hookRig {
	t.Helper()
	ctx := context.Background()
	s := natstest.Run(t)
	_, js := natstest.Connect(t, s)
	if err := bus.EnsureStreams(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	kv, err := flowconfig.OpenBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	key, err := secret.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := secret.ParseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	box, err := secret.New(raw)
	if err != nil {
		t.Fatal(err)
	}
	seal := func(endpoint string) string {
		creds, _ := json.Marshal(map[string]string{"secret": hookSecret})
		sealed, err := box.Seal(flowconfig.CredentialsBinding("acme", endpoint), creds)
		if err != nil {
			t.Fatal(err)
		}
		return sealed
	}
	flow := func(name, entity string, src flowconfig.Endpoint) *flowconfig.Flow {
		return &flowconfig.Flow{Tenant: "acme", Name: name, Generation: 1, Entity: entity, Integrator: "sync", Source: src,
			Target: flowconfig.Endpoint{Name: "erp", Type: "sql"}, Stage: flowconfig.StageActive,
			Mapping: mapping.Spec{Fields: map[string]string{"n": "source.n"}}, Duplicates: flowconfig.DuplicateUpdate}
	}
	flows := []*flowconfig.Flow{
		flow("orders", "order", flowconfig.Endpoint{Name: "shop", Type: webhook.Type, Credentials: seal("shop"),
			Settings: map[string]any{"version_field": "updated_at", "max_body_bytes": 1024}}),
		flow("products", "product", flowconfig.Endpoint{Name: "pim", Type: webhook.Type, Credentials: seal("pim"),
			Settings: map[string]any{"auth": "token", "body": "array", "key_field": "sku"}}),
		flow("invoices", "invoice", flowconfig.Endpoint{Name: "feed", Type: "nats"}),
	}
	for _, f := range flows {
		b, err := flowconfig.Encode(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, f.Key(), b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kv.Put(ctx, flowconfig.TenantKey("acme"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	w := flowconfig.NewWatcher(kv, nil)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	reg := sdk.NewRegistry()
	if err := webhook.Register(reg); err != nil {
		t.Fatal(err)
	}
	egress, err := sdk.NewEgress(sdk.EgressConfig{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := connector.New(connector.Deps{JetStream: js, Flows: w.Index(), Connectors: reg, Bus: bus.DefaultConfig(), Egress: egress, Secrets: box})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.MountHooks(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &hookRig{t: t, url: srv.URL, js: js}
}

type answer struct {
	status   int
	Error    string
	EventIDs []string
	// Duplicates is how many records an earlier attempt had stored.
	Duplicates int
}

// post sends body to path with headers.
func (r *hookRig) post(path string, body []byte, h http.Header) answer {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.url+path, bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	return r.do(req)
}

func (r *hookRig) do(req *http.Request) answer {
	r.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a answer
	if err := json.Unmarshal(b, &a); err != nil || resp.Header.Get("Content-Type") != "application/json" {
		r.t.Fatalf("answer %d %q (%s) is not JSON: %v", resp.StatusCode, b, resp.Header.Get("Content-Type"), err)
	}
	a.status = resp.StatusCode
	return a
}

// signed returns the headers of delivery signed at the time at.
func signed(delivery string, at time.Time, body []byte) http.Header {
	return http.Header{
		"X-Syncline-Delivery":  {delivery},
		"X-Syncline-Timestamp": {strconv.FormatInt(at.Unix(), 10)},
		"X-Syncline-Signature": {webhook.Sign([]byte(hookSecret), delivery, at.Unix(), body)},
	}
}

// stored returns the messages of the ingest stream on subject.
func (r *hookRig) stored(subject string) []*jetstream.RawStreamMsg {
	r.t.Helper()
	ctx := context.Background()
	st, err := r.js.Stream(ctx, bus.StreamIngest)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	// Stored subjects end in the partition; subject names the route.
	route := func(s string) string { t, e, x, _ := bus.IngestRoute(s); return t + "." + e + "." + x }
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		if subject == ">" || route(m.Subject) == route(subject) {
			out = append(out, m)
		}
	}
	return out
}

func TestHookStoresADeliveryOnce(t *testing.T) {
	r := startHooks(t)
	body := []byte(`{"id":"SO-1","updated_at":"2024-05-01T12:00:00Z","n":1}`)
	first := r.post("/hooks/acme/shop/order", body, signed("d-1", time.Now(), body))
	if first.status != http.StatusOK || len(first.EventIDs) != 1 || first.Duplicates != 0 {
		t.Fatalf("first attempt answered %+v, want 200 with one event id", first)
	}
	msgs := r.stored("ingest.acme.shop.order")
	if len(msgs) != 1 {
		t.Fatalf("the ingest stream holds %d events of the delivery, want 1", len(msgs))
	}
	e, err := envelope.Decode(msgs[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	want := webhook.EventID("acme", "shop", "order", "d-1", 0)
	if e.EventId != want || first.EventIDs[0] != want || e.Tenant != "acme" || e.SourceEndpoint != "shop" || e.Entity != "order" ||
		e.SourceKey != "SO-1" || e.SourceVersion != time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).UnixMicro() ||
		string(e.Payload) != string(body) || e.Attributes["webhook_delivery"] != "d-1" {
		t.Errorf("stored %+v, answered %v; want event %s of key SO-1 with the body as sent", e, first.EventIDs, want)
	}

	// The sender did not see the answer and tries again, signing anew a
	// little later, and again at once from two connections: each attempt
	// is answered 200 with the same event id, and the event is stored once.
	again := r.post("/hooks/acme/shop/order", body, signed("d-1", time.Now().Add(time.Second), body))
	if again.status != http.StatusOK || len(again.EventIDs) != 1 || again.EventIDs[0] != want || again.Duplicates != 1 {
		t.Fatalf("the retry answered %+v, want 200 with event id %s, a duplicate", again, want)
	}
	var wg sync.WaitGroup
	answers := make([]answer, 4)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = r.post("/hooks/acme/shop/order", body, signed("d-1", time.Now(), body))
		}()
	}
	wg.Wait()
	for _, a := range answers {
		if a.status != http.StatusOK || a.EventIDs[0] != want {
			t.Errorf("a concurrent retry answered %+v", a)
		}
	}
	if n := len(r.stored("ingest.acme.shop.order")); n != 1 {
		t.Errorf("the ingest stream holds %d events after retries of one delivery, want 1", n)
	}

	// Another delivery of the same record is another event.
	other := r.post("/hooks/acme/shop/order", body, signed("d-2", time.Now(), body))
	if other.status != http.StatusOK || other.Duplicates != 0 || other.EventIDs[0] == want {
		t.Errorf("a new delivery answered %+v, want a new event", other)
	}
}

func TestHookTokenAndArray(t *testing.T) {
	r := startHooks(t)
	body := []byte(`[{"sku":"TS-1","n":1},{"sku":"TS-2","n":2},{"sku":3,"n":3}]`)
	h := http.Header{"Authorization": {"Bearer " + hookSecret}, "X-Syncline-Delivery": {"batch-1"}}
	a := r.post("/hooks/acme/pim/product", body, h)
	if a.status != http.StatusOK || len(a.EventIDs) != 3 {
		t.Fatalf("answered %+v, want 200 with three event ids", a)
	}
	h = http.Header{"X-Syncline-Token": {hookSecret}, "X-Syncline-Delivery": {"batch-1"}}
	if a := r.post("/hooks/acme/pim/product", body, h); a.status != http.StatusOK || a.Duplicates != 3 {
		t.Fatalf("the retry answered %+v, want 200 with three duplicates", a)
	}
	msgs := r.stored("ingest.acme.pim.product")
	var keys []string
	for _, m := range msgs {
		e, err := envelope.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, e.SourceKey)
	}
	if strings.Join(keys, ",") != "TS-1,TS-2,3" {
		t.Errorf("stored keys %v, want TS-1, TS-2 and 3, once each", keys)
	}
	if a := r.post("/hooks/acme/pim/product", body, http.Header{"X-Syncline-Token": {"guess"}, "X-Syncline-Delivery": {"batch-2"}}); a.status != http.StatusUnauthorized {
		t.Errorf("a wrong token answered %+v, want 401", a)
	}
}

// TestHookRetryKeepsItsFirstVersion: a delivery whose records carry no version is versioned
// by its first arrival; retried after the ingest stream's duplicate window, and after a
// newer delivery of the same record, it is stored again with that first version, older
// than the newer delivery's, so that it never overwrites it.
func TestHookRetryKeepsItsFirstVersion(t *testing.T) {
	cfg := bus.DefaultConfig()
	cfg.IngestDuplicates = time.Second
	r := startHooksWith(t, cfg)
	send := func(delivery, body string) {
		t.Helper()
		h := http.Header{"X-Syncline-Token": {hookSecret}, "X-Syncline-Delivery": {delivery}}
		if a := r.post("/hooks/acme/pim/product", []byte(body), h); a.status != http.StatusOK {
			t.Fatalf("delivery %s answered %+v", delivery, a)
		}
	}
	send("old", `[{"sku":"TS-1","n":1}]`)
	time.Sleep(1500 * time.Millisecond) // past the duplicate window
	send("new", `[{"sku":"TS-1","n":2}]`)
	time.Sleep(1500 * time.Millisecond)
	send("old", `[{"sku":"TS-1","n":1}]`)
	var versions []int64
	var payloads []string
	for _, m := range r.stored("ingest.acme.pim.product") {
		e, err := envelope.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, e.SourceVersion)
		payloads = append(payloads, string(e.Payload))
	}
	if len(versions) != 3 {
		t.Fatalf("stored %d events (%v), want the old delivery twice and the new once", len(versions), payloads)
	}
	if versions[2] != versions[0] || versions[1] <= versions[0] {
		t.Fatalf("versions old %d, new %d, old again %d: the retry must keep its first version, older than the new delivery's", versions[0], versions[1], versions[2])
	}
}

// TestHookRefusals: each refusal has its status and a message, and stores
// nothing.
func TestHookRefusals(t *testing.T) {
	r := startHooks(t)
	body := []byte(`{"id":"SO-1","updated_at":5}`)
	now := time.Now()
	with := func(h http.Header, k, v string) http.Header {
		h = h.Clone()
		if v == "" {
			h.Del(k)
		} else {
			h.Set(k, v)
		}
		return h
	}
	good := signed("d-1", now, body)
	big := []byte(`{"id":"SO-1","updated_at":5,"note":"` + strings.Repeat("x", 2000) + `"}`)
	for _, tc := range []struct {
		name   string
		path   string
		body   []byte
		h      http.Header
		status int
		want   string
	}{
		{"bad signature", "/hooks/acme/shop/order", body, with(good, "X-Syncline-Signature", webhook.Sign([]byte("not-the-secret-0123456789abcdef"), "d-1", now.Unix(), body)), 401, "does not match"},
		{"no signature", "/hooks/acme/shop/order", body, with(good, "X-Syncline-Signature", ""), 401, "X-Syncline-Signature is missing"},
		{"stale timestamp", "/hooks/acme/shop/order", body, signed("d-1", now.Add(-6*time.Minute), body), 401, "outside this endpoint's window of 5m0s"},
		{"a token to an hmac endpoint", "/hooks/acme/shop/order", body, http.Header{"X-Syncline-Token": {hookSecret}, "X-Syncline-Delivery": {"d-1"}}, 401, "X-Syncline-Signature is missing"},
		{"unknown tenant", "/hooks/globex/shop/order", body, good, 404, "no webhook here"},
		{"unknown endpoint", "/hooks/acme/erp/order", body, good, 404, "no webhook here"},
		{"unknown entity", "/hooks/acme/shop/invoice", body, good, 404, "no webhook here"},
		{"a nats endpoint", "/hooks/acme/feed/invoice", body, good, 404, "no webhook here"},
		{"too short a path", "/hooks/acme/shop", body, good, 404, "no webhook here"},
		{"too long a path", "/hooks/acme/shop/order/1", body, good, 404, "no webhook here"},
		{"oversized", "/hooks/acme/shop/order", big, signed("d-1", now, big), 413, "larger than this endpoint takes, 1 KiB (max_body_bytes)"},
		{"not JSON", "/hooks/acme/shop/order", []byte(`{"id":`), signed("d-1", now, []byte(`{"id":`)), 400, "not valid JSON at line 1, column 7"},
		{"no key", "/hooks/acme/shop/order", []byte(`{"updated_at":5}`), signed("d-1", now, []byte(`{"updated_at":5}`)), 400, "has no id, the record's key (key_field)"},
		{"no delivery id", "/hooks/acme/shop/order", body, with(signed("", now, body), "X-Syncline-Delivery", ""), 400, "X-Syncline-Delivery is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := r.post(tc.path, tc.body, tc.h)
			if a.status != tc.status || !strings.Contains(a.Error, tc.want) || len(a.EventIDs) != 0 {
				t.Fatalf("answered %+v, want %d saying %q", a, tc.status, tc.want)
			}
			if strings.Contains(a.Error, hookSecret) || (tc.status != 400 && strings.Contains(a.Error, "SO-1")) {
				t.Errorf("the refusal shows the secret or the record: %s", a.Error)
			}
		})
	}
	// Unknown tenant, endpoint and entity answer alike.
	var seen []string
	for _, p := range []string{"/hooks/globex/shop/order", "/hooks/acme/erp/order", "/hooks/acme/shop/invoice", "/hooks/acme/feed/invoice"} {
		a := r.post(p, body, good)
		seen = append(seen, strconv.Itoa(a.status)+" "+a.Error)
	}
	for _, s := range seen[1:] {
		if s != seen[0] {
			t.Errorf("unknown webhooks answer differently: %q and %q", seen[0], s)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, r.url+"/hooks/acme/shop/order", nil)
	if a := r.do(req); a.status != http.StatusMethodNotAllowed {
		t.Errorf("GET answered %+v, want 405", a)
	}
	if msgs := r.stored(">"); len(msgs) != 0 {
		t.Errorf("the ingest stream holds %d events after refusals, want none", len(msgs))
	}
}

// TestHookBusDown: when JetStream does not store the delivery, the sender is
// told to try again (503), and the same delivery is stored once it can be.
func TestHookBusDown(t *testing.T) {
	r := startHooks(t)
	ctx := context.Background()
	if err := r.js.DeleteStream(ctx, bus.StreamIngest); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"SO-1","updated_at":5}`)
	a := r.post("/hooks/acme/shop/order", body, signed("d-1", time.Now(), body))
	if a.status != http.StatusServiceUnavailable || !strings.Contains(a.Error, "send the delivery again, with the same delivery id") {
		t.Fatalf("answered %+v with no ingest stream, want 503", a)
	}
	if err := bus.EnsureStreams(ctx, r.js, bus.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	if a := r.post("/hooks/acme/shop/order", body, signed("d-1", time.Now(), body)); a.status != http.StatusOK || a.Duplicates != 0 {
		t.Fatalf("the retry answered %+v, want 200, stored now", a)
	}
	if n := len(r.stored("ingest.acme.shop.order")); n != 1 {
		t.Errorf("the ingest stream holds %d events, want 1", n)
	}
}

// TestHookDeliveriesModel sends a random sequence of deliveries (new ones,
// retries, retries with another body, and refused ones) and checks every
// answer and the ingest stream against a plain model: a delivery id is
// stored once, with the body of its first accepted attempt, and a refused
// attempt stores nothing.
func TestHookDeliveriesModel(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d", seed)
		}
	})
	rnd := rand.New(rand.NewPCG(uint64(seed), 0))
	r := startHooks(t)
	stored := map[string]string{} // delivery id -> body
	for step := range 80 {
		delivery := "d-" + strconv.Itoa(rnd.IntN(8))
		body := fmt.Sprintf(`{"id":"SO-%d","updated_at":%d}`, rnd.IntN(3), 1+rnd.IntN(100))
		at := time.Now()
		var wantStatus int
		kind := rnd.IntN(5)
		switch kind {
		case 0: // another secret
			wantStatus = http.StatusUnauthorized
		case 1: // signed too long ago
			at = at.Add(-10 * time.Minute)
			wantStatus = http.StatusUnauthorized
		case 2: // too large
			body = `{"id":"SO-9","updated_at":1,"pad":"` + strings.Repeat("x", 1100) + `"}`
			wantStatus = http.StatusRequestEntityTooLarge
		default:
			wantStatus = http.StatusOK
		}
		h := signed(delivery, at, []byte(body))
		if kind == 0 {
			h.Set("X-Syncline-Signature", webhook.Sign([]byte("not-the-secret-0123456789abcdef"), delivery, at.Unix(), []byte(body)))
		}
		a := r.post("/hooks/acme/shop/order", []byte(body), h)
		_, seen := stored[delivery]
		switch {
		case a.status != wantStatus:
			t.Fatalf("step %d: delivery %s (kind %d) answered %+v, want %d", step, delivery, kind, a, wantStatus)
		case wantStatus != http.StatusOK:
		case len(a.EventIDs) != 1 || a.EventIDs[0] != webhook.EventID("acme", "shop", "order", delivery, 0):
			t.Fatalf("step %d: delivery %s answered event ids %v", step, delivery, a.EventIDs)
		case seen && a.Duplicates != 1, !seen && a.Duplicates != 0:
			t.Fatalf("step %d: delivery %s (stored before: %v) answered %d duplicates", step, delivery, seen, a.Duplicates)
		case !seen:
			stored[delivery] = body
		}
	}
	msgs := r.stored("ingest.acme.shop.order")
	got := map[string]string{}
	for _, m := range msgs {
		e, err := envelope.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		d := e.Attributes["webhook_delivery"]
		if _, twice := got[d]; twice {
			t.Errorf("delivery %s is stored twice", d)
		}
		got[d] = string(e.Payload)
	}
	if fmt.Sprint(got) != fmt.Sprint(stored) {
		t.Errorf("the ingest stream holds %v, want %v", got, stored)
	}
}
