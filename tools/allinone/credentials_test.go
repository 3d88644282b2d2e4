package allinone_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/encoding/protojson"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/pgtest"
)

// syncBuffer is a log sink that the services write from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestCredentialsNeverShow runs flows whose targets have a password, one
// that works and one that cannot connect, and greps every API response,
// every log line (at debug level) and every span for the password.
func TestCredentialsNeverShow(t *testing.T) {
	const password = "pw-7d1c2e9b-never-show-me"
	logs := &syncBuffer{}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	dir := t.TempDir()
	dsn := pgtest.NewDatabase(t)
	e := start(t, options{dir: dir, driver: "postgres", dsn: dsn, tracer: tp,
		logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx := context.Background()
	var responses []string
	endpoint := func(name, dsn string) *controlplanev1.Resource {
		return resourceOf(t, "Endpoint", "acme", name, map[string]any{"type": "sql", "description": "ERP", "settings": map[string]any{
			"driver": "postgres", "dsn": dsn, "table": "orders", "create_table": true}, "credentials": map[string]any{"password": password}})
	}
	flow := func(name, target string) *controlplanev1.Resource {
		return resourceOf(t, "Flow", "acme", name, map[string]any{"integrator": "shop-to-erp", "source": "shop", "target": target, "entity": "order",
			"mapping": map[string]any{"fields": map[string]any{"order_number": "source.number"}, "exclude": []any{"*"}}})
	}
	resources := []*controlplanev1.Resource{
		resourceOf(t, "Tenant", "", "acme", map[string]any{}),
		resourceOf(t, "Integrator", "acme", "shop-to-erp", map[string]any{}),
		resourceOf(t, "Endpoint", "acme", "shop", map[string]any{"type": "nats", "description": "webshop"}),
		endpoint("erp", dsn),
		endpoint("down", "postgres://postgres@"+downTarget+"/none?connect_timeout=1"),
		flow("orders", "erp"),
		flow("orders-down", "down"),
	}
	dry, err := e.resource.Apply(ctx, &controlplanev1.ApplyRequest{Resources: resources, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	responses = append(responses, protojson.Format(dry))
	applied, err := e.resource.Apply(ctx, &controlplanev1.ApplyRequest{Resources: resources})
	if err != nil {
		t.Fatal(err)
	}
	responses = append(responses, protojson.Format(applied))
	e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "C1", Version: 1, Payload: order(1, "paid")})
	eventually(t, 60*time.Second, func() string {
		recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: "C1"})
		actions := map[string]string{}
		for _, r := range recs {
			actions[r.Flow] = r.Action
			responses = append(responses, protojson.Format(r))
		}
		if actions["orders"] != "created" {
			return fmt.Sprintf("log of C1 by flow: %v, want created on orders", actions)
		}
		// The flow whose target cannot connect is paused, its event held.
		if !strings.Contains(logs.String(), `"endpoint":"down"`) {
			return "no log line of the connector names the endpoint that cannot connect"
		}
		return ""
	})
	for _, kind := range []string{"Tenant", "Integrator", "Endpoint", "Flow"} {
		list, err := e.resource.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		responses = append(responses, protojson.Format(list))
	}
	got, err := e.resource.GetResource(ctx, &controlplanev1.GetResourceRequest{Kind: "Endpoint", Tenant: "acme", Name: "erp"})
	if err != nil {
		t.Fatal(err)
	}
	responses = append(responses, protojson.Format(got))
	// An apply that fails on the endpoint says why without the value.
	bad := endpoint("erp", dsn)
	bad.Spec.Fields["settings"].GetStructValue().Fields["password"] = bad.Spec.Fields["credentials"].GetStructValue().Fields["password"]
	_, err = e.resource.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{bad}})
	if err == nil {
		t.Fatal("a password among the settings was accepted")
	}
	responses = append(responses, err.Error())

	var spans []string
	for _, s := range rec.Ended() {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s %s", s.Name(), s.Status().Code, s.Status().Description)
		for _, a := range s.Attributes() {
			fmt.Fprintf(&b, " %s=%s", a.Key, a.Value.String())
		}
		for _, ev := range s.Events() {
			fmt.Fprintf(&b, " event %s", ev.Name)
			for _, a := range ev.Attributes {
				fmt.Fprintf(&b, " %s=%s", a.Key, a.Value.String())
			}
		}
		spans = append(spans, b.String())
	}
	if len(spans) == 0 || logs.String() == "" {
		t.Fatalf("nothing to check: %d spans, %d bytes of logs", len(spans), len(logs.String()))
	}
	for what, texts := range map[string][]string{"API response": responses, "span": spans, "log": strings.Split(logs.String(), "\n")} {
		for _, s := range texts {
			if strings.Contains(s, password) {
				t.Errorf("a %s shows the password: %s", what, s)
			}
		}
	}
}
