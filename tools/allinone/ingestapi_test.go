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
