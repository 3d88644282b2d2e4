package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
)

// reportRange holds the --from and --to flags both report commands take.
type reportRange struct{ from, to string }

func (r *reportRange) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&r.from, "from", "", "first day (2006-01-02, UTC) or an RFC 3339 time; default: 6 days before today")
	cmd.Flags().StringVar(&r.to, "to", "", "last day, included (2006-01-02, UTC), or an RFC 3339 time, excluded; default: today")
}

// timestamps parses the flags; a flag left out is nil, for the server's default. Days are UTC
// days, the days the report is bucketed by, and --to's day is included.
func (r *reportRange) timestamps() (from, to *timestamppb.Timestamp, err error) {
	for _, f := range []struct {
		flag, v string
		next    bool
		dst     **timestamppb.Timestamp
	}{{"--from", r.from, false, &from}, {"--to", r.to, true, &to}} {
		if f.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, f.v)
		if err != nil {
			d, derr := time.Parse(time.DateOnly, f.v)
			if derr != nil {
				return nil, nil, fmt.Errorf("%s %q: use a date (2026-11-22) or RFC 3339 (2026-11-22T10:00:00Z)", f.flag, f.v)
			}
			if f.next {
				d = d.AddDate(0, 0, 1)
			}
			t = d
		}
		*f.dst = timestamppb.New(t)
	}
	return from, to, nil
}

// runReport runs a report command: it checks -o and the range into from and to, calls the log
// API and prints its answer as JSON or with table.
func runReport[R proto.Message](ctx context.Context, g *globals, output string, rng *reportRange, from, to **timestamppb.Timestamp,
	table func(io.Writer, R) error, call func(context.Context, eventlogv1connect.LogServiceClient) (R, error)) error {
	if err := checkOutput(output); err != nil {
		return err
	}
	var err error
	if *from, *to, err = rng.timestamps(); err != nil {
		return err
	}
	opts, err := g.clientOptions()
	if err != nil {
		return err
	}
	resp, err := call(ctx, eventlogv1connect.NewLogServiceClient(httpClient(), g.server, opts...))
	if err != nil {
		return explain(err, g.server)
	}
	if output == "json" {
		return printJSON(g.out, resp)
	}
	return table(g.out, resp)
}

func newReport(g *globals) *cobra.Command {
	var req eventlogv1.ReportRequest
	var rng reportRange
	var output string
	cmd := &cobra.Command{
		Use:   "report [--tenant T] [filters]",
		Short: "Summarise the API log per integrator, flow, entity and UTC day",
		Long: `Summarise a tenant's API log per integrator, flow, entity and UTC day: records by action,
failure rate, p50 and p95 of the duration (nearest rank) and the most frequent errors with a
sample reason. The range defaults to the last 7 UTC days, today included.

With an integrator token, --tenant may be left out; no other tenant can be used.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReport(cmd.Context(), g, output, &rng, &req.From, &req.To, printReport,
				func(ctx context.Context, c eventlogv1connect.LogServiceClient) (*eventlogv1.ReportResponse, error) {
					return c.Report(ctx, &req)
				})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Tenant, "tenant", "", "tenant (an integrator token's own by default)")
	f.StringVar(&req.Integrator, "integrator", "", "only this integrator")
	f.StringVar(&req.Flow, "flow", "", "only this flow")
	f.StringVar(&req.Entity, "entity", "", "only this entity")
	f.Int32Var(&req.TopErrors, "top-errors", 3, "error codes per row (at most 20)")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	rng.flags(cmd)
	cmd.AddCommand(newReportProviders(g))
	return cmd
}

func newReportProviders(g *globals) *cobra.Command {
	var req eventlogv1.ReportProvidersRequest
	var rng reportRange
	var output string
	cmd := &cobra.Command{
		Use:   "providers [--tenant T]",
		Short: "Show which connector types each tenant's flows use and the records each pair carried",
		Long: `Show, per tenant, each pair of source and target connector types its flows use, the flows,
and how many records (and failures) they logged in the range (default: the last 7 UTC days).

The admin token sees every tenant with flows unless --tenant names one; an integrator token
sees its own tenant.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReport(cmd.Context(), g, output, &rng, &req.From, &req.To, printProviders,
				func(ctx context.Context, c eventlogv1connect.LogServiceClient) (*eventlogv1.ReportProvidersResponse, error) {
					return c.ReportProviders(ctx, &req)
				})
		},
	}
	cmd.Flags().StringVar(&req.Tenant, "tenant", "", "tenant (default: every tenant for the admin token, its own for an integrator token)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	rng.flags(cmd)
	return cmd
}

func checkOutput(output string) error {
	if output != "table" && output != "json" {
		return fmt.Errorf("-o %q: use table or json", output)
	}
	return nil
}

// printJSON prints m as indented JSON with every field, zero counts included. protojson's
// own indentation varies on purpose, so it is re-indented.
func printJSON(out io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err = buf.WriteTo(out)
	return err
}

func printReport(out io.Writer, resp *eventlogv1.ReportResponse) error {
	fmt.Fprintf(out, "tenant %s, %s to %s\n", resp.Tenant, resp.From.AsTime().Format(time.RFC3339), resp.To.AsTime().Format(time.RFC3339))
	if len(resp.Rows) == 0 {
		fmt.Fprintln(out, "no records in this range")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DAY\tINTEGRATOR\tFLOW\tENTITY\tTOTAL\tCREATED\tUPDATED\tDELETED\tSKIPPED\tFAILED\tFAILURE RATE\tP50\tP95\tTOP ERRORS")
	var errs bool
	for _, r := range resp.Rows {
		codes := make([]string, len(r.TopErrors))
		for i, e := range r.TopErrors {
			codes[i] = fmt.Sprintf("%s×%d", dash(e.Code), e.Count)
			errs = true
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f%%\t%s\t%s\t%s\n", r.Day, dash(r.Integrator), dash(r.Flow), dash(r.Entity),
			r.Total, r.Created, r.Updated, r.Deleted, r.Skipped, r.Failed, 100*r.FailureRate,
			micros(r.P50DurationUs), micros(r.P95DurationUs), dash(strings.Join(codes, ", ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !errs {
		return nil
	}
	fmt.Fprintln(out, "\nerrors, with a sample reason:")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DAY\tFLOW\tCODE\tCOUNT\tREASON")
	for _, r := range resp.Rows {
		for _, e := range r.TopErrors {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.Day, dash(r.Flow), dash(e.Code), e.Count, dash(e.Reason))
		}
	}
	return tw.Flush()
}

func printProviders(out io.Writer, resp *eventlogv1.ReportProvidersResponse) error {
	fmt.Fprintf(out, "%s to %s\n", resp.From.AsTime().Format(time.RFC3339), resp.To.AsTime().Format(time.RFC3339))
	if len(resp.Rows) == 0 {
		fmt.Fprintln(out, "no flows")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tSOURCE TYPE\tTARGET TYPE\tFLOWS\tRECORDS\tFAILURES")
	for _, r := range resp.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", r.Tenant, r.SourceType, r.TargetType, dash(strings.Join(r.Flows, ",")), r.Records, r.Failures)
	}
	return tw.Flush()
}

// micros shows a duration in microseconds with three significant figures or so.
func micros(us int64) string {
	d := time.Duration(us) * time.Microsecond
	switch {
	case d >= time.Second:
		d = d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		d = d.Round(10 * time.Microsecond)
	}
	return d.String()
}
