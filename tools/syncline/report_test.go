package main

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
)

// TestReport runs `syncline report` and `report providers` against a running instance with
// the example flow after three orders: one created, one filtered out (skipped) and one the
// mapping fails on.
func TestReport(t *testing.T) {
	c := newCLI(t)
	c.must("apply", "-f", example("orders.yaml"))
	c.must("publish", "--tenant", "acme", "--endpoint", "shop", "--entity", "order", "--key", "1001", "--file", example("order-1001.json"))
	c.must("publish", "--tenant", "acme", "--endpoint", "shop", "--entity", "order", "--key", "1002",
		"--data", `{"number":"SO-1002","status":"draft","total":1,"customer":{"email":"a@b.c"},"lines":[]}`)
	c.must("publish", "--tenant", "acme", "--endpoint", "shop", "--entity", "order", "--key", "1003",
		"--data", `{"number":"SO-1003","status":"paid","total":"a lot","customer":{"email":"a@b.c"},"lines":[]}`)
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, err := c.run("logs", "--tenant", "acme", "-o", "json")
		if err == nil && strings.Count(out, `"eventId"`) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the three orders never all showed in the log: %v\n%s", err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	logs := c.must("logs", "--tenant", "acme", "--remote-id", "1003", "-o", "json")
	resp := &eventlogv1.QueryLogsResponse{}
	if err := protojson.Unmarshal([]byte(logs), resp); err != nil {
		t.Fatalf("reading logs -o json: %v\n%s", err, logs)
	}
	if len(resp.Records) != 1 || resp.Records[0].Status != "failure" || resp.Records[0].Code == "" {
		t.Fatalf("the order the mapping fails on is logged as %v, want one failure with a code", resp.Records)
	}
	failure := resp.Records[0].Code

	today := time.Now().UTC().Format(time.DateOnly)
	t.Run("table", func(t *testing.T) {
		out := c.must("report", "--tenant", "acme")
		for _, want := range []string{
			"tenant acme, ",
			"DAY         INTEGRATOR   FLOW    ENTITY  TOTAL  CREATED  UPDATED  DELETED  SKIPPED  FAILED  FAILURE RATE  P50",
			today + "  shop-to-erp  orders  order   3      1        0        0        1        1       33.3%",
			failure + "×1",
			"errors, with a sample reason:",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("report printed\n%s\nwithout %q", out, want)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		out := c.must("report", "--tenant", "acme", "--flow", "orders", "-o", "json")
		r := &eventlogv1.ReportResponse{}
		if err := protojson.Unmarshal([]byte(out), r); err != nil {
			t.Fatalf("report -o json is not a ReportResponse: %v\n%s", err, out)
		}
		if len(r.Rows) != 1 {
			t.Fatalf("report -o json has %d rows, want 1:\n%s", len(r.Rows), out)
		}
		row := r.Rows[0]
		if row.Day != today || row.Total != 3 || row.Created != 1 || row.Skipped != 1 || row.Failed != 1 || row.Failures != 1 ||
			row.FailureRate < 0.333 || row.FailureRate > 0.334 || row.P50DurationUs <= 0 || row.P95DurationUs < row.P50DurationUs ||
			len(row.TopErrors) != 1 || row.TopErrors[0].Code != failure || row.TopErrors[0].Count != 1 || row.TopErrors[0].Reason == "" {
			t.Errorf("report -o json row %v, want today's 3 records: 1 created, 1 skipped, 1 failed with code %s", row, failure)
		}
		// Zero counts are printed, for scripts.
		if !strings.Contains(out, `"deleted": "0"`) {
			t.Errorf("report -o json leaves out zero counts:\n%s", out)
		}
	})
	t.Run("filters and range", func(t *testing.T) {
		out := c.must("report", "--tenant", "acme", "--entity", "customer")
		if !strings.Contains(out, "no records in this range") {
			t.Errorf("a report of an entity without records printed\n%s", out)
		}
		yesterday := time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)
		out = c.must("report", "--tenant", "acme", "--from", yesterday, "--to", yesterday, "-o", "json")
		if strings.Contains(out, `"day"`) {
			t.Errorf("a report of yesterday printed today's rows:\n%s", out)
		}
	})
	t.Run("providers", func(t *testing.T) {
		out := c.must("report", "providers")
		want := "TENANT  SOURCE TYPE  TARGET TYPE  FLOWS   RECORDS  FAILURES\nacme    nats         sql          orders  3        1\n"
		if !strings.HasSuffix(out, want) {
			t.Errorf("report providers printed\n%s\nwant it to end with\n%s", out, want)
		}
		out = c.must("report", "providers", "--tenant", "acme", "-o", "json")
		r := &eventlogv1.ReportProvidersResponse{}
		if err := protojson.Unmarshal([]byte(out), r); err != nil {
			t.Fatalf("report providers -o json: %v\n%s", err, out)
		}
		if len(r.Rows) != 1 || r.Rows[0].SourceType != "nats" || r.Rows[0].TargetType != "sql" || r.Rows[0].Records != 3 || r.Rows[0].Failures != 1 {
			t.Errorf("report providers -o json: %v, want acme's nats to sql with 3 records, 1 failure", r.Rows)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"report", "--tenant", "acme", "--from", "yesterday"}, `--from "yesterday": use a date`},
			{[]string{"report", "--tenant", "acme", "-o", "yaml"}, `-o "yaml": use table or json`},
			{[]string{"report"}, "tenant is required"},
			{[]string{"report", "--tenant", "acme", "--from", "2020-01-01"}, "longer than 366 days"},
		} {
			if out, err := c.run(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("syncline %s: %v\n%s\nwant an error containing %q", strings.Join(tc.args, " "), err, out, tc.want)
			}
		}
	})
}
