package apilog

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ReportQuery selects the records a report aggregates: one tenant's records logged in
// [From, To), optionally of one integrator, flow or entity.
type ReportQuery struct {
	Tenant                   string // required: a report never crosses tenants
	From, To                 time.Time
	Integrator, Flow, Entity string
	// TopErrors is how many error codes each row lists: 0 means DefaultTopErrors, at most
	// MaxTopErrors.
	TopErrors int
}

// Report limits.
const (
	DefaultTopErrors = 3
	MaxTopErrors     = 20
	// MaxReportRange bounds a report's range, and so its rows: one per integrator, flow,
	// entity and day.
	MaxReportRange = 366 * 24 * time.Hour
)

// ReportRow aggregates the records of one integrator, flow and entity on one UTC day.
type ReportRow struct {
	Integrator, Flow, Entity string
	Day                      time.Time // midnight UTC
	Total                    int64
	// Records by action.
	Created, Updated, Deleted, Skipped, Failed int64
	// Failures counts the records whose status is failure; FailureRate is Failures / Total.
	Failures    int64
	FailureRate float64
	// P50 and P95 are nearest-rank percentiles of the records' durations (PostgreSQL's
	// percentile_disc): the smallest duration d such that at least 50% (95%) of the row's
	// records took d or less, always a duration that some record took.
	P50, P95 time.Duration
	// TopErrors are the most frequent error codes of the row's failures, most frequent first,
	// ties by code.
	TopErrors []ErrorCount
}

// ErrorCount is how many failures of a report row carried one error code.
type ErrorCount struct {
	Code string // empty for failures without a code
	// Reason is one of the failures' reasons, the first in byte order, as a sample.
	Reason string
	Count  int64
}

// TrafficQuery selects the records a traffic count covers: one tenant's records logged in
// [From, To).
type TrafficQuery struct {
	Tenant   string
	From, To time.Time
}

// FlowTraffic is how many records one flow logged from one source endpoint. Flow is empty for
// events that failed before any flow took them.
type FlowTraffic struct {
	Flow, SourceEndpoint string
	Records, Failures    int64
}

// validateRange checks a report's tenant and range.
func validateRange(tenant string, from, to time.Time) error {
	switch {
	case tenant == "":
		return &QueryError{Field: "tenant", Reason: "required; a report never spans tenants"}
	case from.IsZero():
		return &QueryError{Field: "from", Reason: "required: a report covers a range of time"}
	case to.IsZero():
		return &QueryError{Field: "to", Reason: "required: a report covers a range of time"}
	case !to.After(from):
		return &QueryError{Field: "to", Reason: fmt.Sprintf("%s is not after from %s", to.Format(time.RFC3339Nano), from.Format(time.RFC3339Nano))}
	case to.Sub(from) > MaxReportRange:
		return &QueryError{Field: "to", Reason: fmt.Sprintf("the range from %s to %s is longer than %d days; report on a shorter range",
			from.Format(time.RFC3339), to.Format(time.RFC3339), MaxReportRange/(24*time.Hour))}
	}
	return nil
}

// reportPlan is a validated ReportQuery: the WHERE clause both report statements share.
type reportPlan struct {
	where     string
	args      []any
	topErrors int
}

// planReport validates q and writes the WHERE clause of its statements.
func planReport(q ReportQuery, d dialect) (reportPlan, error) {
	if err := validateRange(q.Tenant, q.From, q.To); err != nil {
		return reportPlan{}, err
	}
	if q.TopErrors < 0 || q.TopErrors > MaxTopErrors {
		return reportPlan{}, &QueryError{Field: "top_errors", Reason: fmt.Sprintf("%d is out of range; use 1 to %d, or 0 for %d", q.TopErrors, MaxTopErrors, DefaultTopErrors)}
	}
	top := q.TopErrors
	if top == 0 {
		top = DefaultTopErrors
	}
	var b strings.Builder
	args := make([]any, 0, 6)
	arg := func(v any) string {
		args = append(args, v)
		return d.placeholder(len(args))
	}
	b.WriteString("tenant = " + arg(q.Tenant) + " AND logged_at >= " + arg(d.timeArg(q.From)) + " AND logged_at < " + arg(d.timeArg(q.To)))
	for _, f := range []struct{ column, value string }{
		{"integrator", q.Integrator},
		{"flow", q.Flow},
		{"entity", q.Entity},
	} {
		if f.value != "" {
			b.WriteString(" AND " + f.column + " = " + arg(f.value))
		}
	}
	return reportPlan{where: b.String(), args: args, topErrors: top}, nil
}

// fill writes the plan into a report statement: {where} is the WHERE clause, {top} the number
// of error codes per row.
func (p reportPlan) fill(statement string) string {
	return strings.NewReplacer("{where}", p.where, "{top}", strconv.Itoa(p.topErrors)).Replace(statement)
}

// rowKey identifies a report row.
type rowKey struct {
	integrator, flow, entity string
	day                      time.Time
}

// assembleReport attaches each row's errors and puts the rows in a fixed order: by day, then
// integrator, flow and entity in byte order. Both backends end here, so they agree on order
// and on the derived figures.
func assembleReport(rows []ReportRow, errs map[rowKey][]ErrorCount) []ReportRow {
	for i := range rows {
		r := &rows[i]
		if r.Total > 0 {
			r.FailureRate = float64(r.Failures) / float64(r.Total)
		}
		r.TopErrors = errs[rowKey{r.Integrator, r.Flow, r.Entity, r.Day}]
		slices.SortFunc(r.TopErrors, func(a, b ErrorCount) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Code, b.Code))
		})
	}
	slices.SortFunc(rows, func(a, b ReportRow) int {
		return cmp.Or(a.Day.Compare(b.Day), strings.Compare(a.Integrator, b.Integrator),
			strings.Compare(a.Flow, b.Flow), strings.Compare(a.Entity, b.Entity))
	})
	return rows
}
