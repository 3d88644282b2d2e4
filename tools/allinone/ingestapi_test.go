package allinone_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	ingestv1 "github.com/syncline/syncline/pkg/api/syncline/ingest/v1"
	"github.com/syncline/syncline/pkg/api/syncline/ingest/v1/ingestv1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/bus"
)

// TestIngestAPIRefusesBadChanges: keys and records that would fail a later
// stage, a store or the API log are refused at the door, with an error that
// says what is wrong and where, and nothing of the batch is published.
func TestIngestAPIRefusesBadChanges(t *testing.T) {
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: filepath.Join(dir, "erp.db")})
	e.applyOrders("acme", "orders")
	client := ingestv1connect.NewIngestServiceClient(http.DefaultClient, e.in.APIURL(), connect.WithInterceptors(auth.Bearer(e.in.AdminToken())))
	good := func() *ingestv1.Change {
		return &ingestv1.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "1001", Version: 1, Record: string(order(1, "paid"))}
	}
	for _, tc := range []struct {
		name   string
		modify func(c *ingestv1.Change)
		want   string
	}{
		{"key with NUL", func(c *ingestv1.Change) { c.Key = "10\x0001" }, `source_key "10\x0001" has the control character U+0000 at byte 3`},
		{"100 KB key", func(c *ingestv1.Change) { c.Key = strings.Repeat("k", 100<<10) }, "is 102400 bytes long: use at most 256"},
		{"NaN", func(c *ingestv1.Change) { c.Record = `{"number":"SO-1","total":NaN}` }, "not valid JSON at line 1, column 26 (byte 26): invalid character 'N' looking for beginning of value: NaN and Infinity are not JSON numbers"},
		{"10,000 deep", func(c *ingestv1.Change) {
			c.Record = `{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`
		}, "nested deeper than 64 levels at line 1, column 69 (byte 69)"},
		{"30-digit number", func(c *ingestv1.Change) { c.Record = `{"number":"SO-1","total":123456789012345678901234567890}` }, "send it as a string to keep every digit"},
		{"1.5 MiB record", func(c *ingestv1.Change) { c.Record = `{"blob":"` + strings.Repeat("x", 3<<19) + `"}` }, "more than the 512 KiB (524288 bytes) a record may be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := good()
			tc.modify(bad)
			_, err := client.Publish(context.Background(), &ingestv1.PublishRequest{Changes: []*ingestv1.Change{good(), bad}})
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "change 1") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Publish = %v, want InvalidArgument about change 1 saying %q", err, tc.want)
			}
		})
	}
	if n := subjectCount(t, e.js, bus.StreamIngest, "acme"); n != 0 {
		t.Errorf("the ingest stream holds %d events of acme after refused batches, want 0", n)
	}
}

// TestIngestAPIRefusesChangesThatGoNowhere: a change for a tenant that does
// not exist, or that no flow of its tenant reads, is refused with what the
// tenant's flows do read, instead of being accepted and lost.
func TestIngestAPIRefusesChangesThatGoNowhere(t *testing.T) {
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: filepath.Join(dir, "erp.db")})
	e.applyOrders("acme", "orders")
	client := ingestv1connect.NewIngestServiceClient(http.DefaultClient, e.in.APIURL(), connect.WithInterceptors(auth.Bearer(e.in.AdminToken())))
	change := func(tenant, endpoint, entity string) *ingestv1.Change {
		return &ingestv1.Change{Tenant: tenant, Endpoint: endpoint, Entity: entity, Key: "1001", Version: 1, Record: string(order(1, "paid"))}
	}
	for _, tc := range []struct {
		name   string
		change *ingestv1.Change
		code   connect.Code
		want   string
	}{
		{"unknown tenant", change("nobody", "shop", "order"), connect.CodeNotFound, `tenant "nobody" does not exist`},
		{"unknown endpoint", change("acme", "pim", "order"), connect.CodeFailedPrecondition, `no flow of tenant "acme" reads entity "order" from endpoint "pim", so the change would go nowhere; its flows read order from shop`},
		{"entity without a flow", change("acme", "shop", "invoice"), connect.CodeFailedPrecondition, `no flow of tenant "acme" reads entity "invoice" from endpoint "shop"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.Publish(context.Background(), &ingestv1.PublishRequest{Changes: []*ingestv1.Change{change("acme", "shop", "order"), tc.change}})
			if connect.CodeOf(err) != tc.code || !strings.Contains(err.Error(), "change 1") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Publish = %v, want %v about change 1 saying %q", err, tc.code, tc.want)
			}
		})
	}
	// Asking only: the same answers, and nothing published either way.
	for _, c := range []*ingestv1.Change{change("acme", "shop", "order"), change("acme", "shop", "invoice")} {
		resp, err := client.Publish(context.Background(), &ingestv1.PublishRequest{Changes: []*ingestv1.Change{c}, CheckOnly: true})
		switch {
		case c.Entity == "order" && (err != nil || len(resp.EventIds) != 0):
			t.Errorf("checking a change a flow reads: %v, %v; want no error and no event ids", resp, err)
		case c.Entity == "invoice" && connect.CodeOf(err) != connect.CodeFailedPrecondition:
			t.Errorf("checking a change no flow reads: %v, want FailedPrecondition", err)
		}
	}
	for _, tenant := range []string{"acme", "nobody"} {
		if n := subjectCount(t, e.js, bus.StreamIngest, tenant); n != 0 {
			t.Errorf("the ingest stream holds %d events of %s after refused batches, want 0", n, tenant)
		}
	}
}
