package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
)

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

func (c *Console) funcs() template.FuncMap {
	return template.FuncMap{
		"when": func(ts *timestamppb.Timestamp) string {
			if ts == nil {
				return "-"
			}
			return ts.AsTime().UTC().Format("2006-01-02 15:04:05")
		},
		"traceURL": func(id string) string {
			if c.cfg.TraceURL == "" || id == "" {
				return ""
			}
			return strings.ReplaceAll(c.cfg.TraceURL, "{traceId}", url.PathEscape(id))
		},
		"ms": func(us int64) string { return fmt.Sprintf("%.1f ms", float64(us)/1000) },
		"spec": func(r *controlplanev1.Resource, field string) string {
			v, ok := r.GetSpec().GetFields()[field]
			if !ok {
				return ""
			}
			return v.GetStringValue()
		},
		"percent": func(f float64) string { return fmt.Sprintf("%.1f %%", f*100) },
		"list":    func(s ...string) []string { return s },
		"nav":     func() []navItem { return nav },
		"stage":   stageOf,
		"sample":  func() string { return sampleExample },
		// value is a JSON value as JSON; null for none.
		"value": func(v *structpb.Value) string {
			if v == nil {
				return "null"
			}
			b, err := json.Marshal(v.AsInterface())
			if err != nil {
				return v.String()
			}
			return string(b)
		},
		// short is a trace id's first 8 digits: enough to tell traces apart on a page.
		"short": func(id string) string { return id[:min(8, len(id))] },
	}
}

// page is what every page's template gets.
type page struct {
	Title string
	// Tenant is the tenant the page is of; Tenants those the signed-in token sees.
	Tenant  string
	Tenants []string
	// Section is the page's place in the header's navigation: the first part of its path
	// under /t/<tenant>/ ("" for the dashboard, "endpoints" for the endpoints and each
	// endpoint's page).
	Section string
	CSRF    string
	// Error is a problem to show at the top of the page; FieldErrors are shown next to
	// the fields they name.
	Error       string
	FieldErrors map[string]string
	Data        any
}

// render writes page name with status.
func (c *Console) render(w http.ResponseWriter, status int, name string, p page) {
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, p); err != nil {
		c.log.Error("rendering a console page", "page", name, "error", err)
		http.Error(w, "the page could not be shown; the console's log says why", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// apiError shows an API's refusal as the page's error, with the status it deserves.
func (c *Console) apiError(w http.ResponseWriter, name string, p page, err error) {
	var ce *connect.Error
	if errors.As(err, &ce) {
		p.Error = ce.Message()
	} else {
		p.Error = err.Error()
	}
	c.render(w, statusOf(err), name, p)
}

// statusOf is the HTTP status of a page an API refused with err.
func statusOf(err error) int {
	switch connect.CodeOf(err) {
	case connect.CodePermissionDenied:
		return http.StatusForbidden
	case connect.CodeNotFound:
		return http.StatusNotFound
	case connect.CodeInvalidArgument, connect.CodeFailedPrecondition:
		return http.StatusBadRequest
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	}
	return http.StatusBadGateway
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, http.StatusOK, "login", page{Title: "Sign in", Data: safeNext(r.URL.Query().Get("next"))})
}

// safeNext keeps a redirect after sign-in on this console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

// login checks the token against the API (a token it does not know is refused there) and
// starts a session with it.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.PostFormValue("next"))
	token := strings.TrimSpace(r.PostFormValue("token"))
	p := page{Title: "Sign in", Data: next}
	if token == "" {
		p.FieldErrors = map[string]string{"token": "give the admin token or an integrator's token"}
		c.render(w, http.StatusBadRequest, "login", p)
		return
	}
	rq := c.clients(session{Token: token})
	if _, err := rq.resources.ListResources(r.Context(), &controlplanev1.ListResourcesRequest{Kind: "Tenant"}); err != nil {
		msg := err.Error()
		var ce *connect.Error
		if errors.As(err, &ce) {
			msg = ce.Message()
		}
		p.FieldErrors = map[string]string{"token": msg}
		c.render(w, http.StatusUnauthorized, "login", p)
		return
	}
	if err := c.sessions.start(w, token); err != nil {
		c.log.Error("starting a console session", "error", err)
		http.Error(w, "the sign-in could not be kept; the console's log says why", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ *request) {
	c.sessions.end(w)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// tenants returns the tenants the request's token sees, by name.
func (c *Console) tenants(r *http.Request, rq *request) ([]string, error) {
	resp, err := rq.resources.ListResources(r.Context(), &controlplanev1.ListResourcesRequest{Kind: "Tenant"})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, t := range resp.Resources {
		names = append(names, t.GetMetadata().GetName())
	}
	sort.Strings(names)
	return names, nil
}

// home sends the signed-in user to the dashboard of their tenant, or lists the tenants
// for the admin token.
func (c *Console) home(w http.ResponseWriter, r *http.Request, rq *request) {
	names, err := c.tenants(r, rq)
	p := page{Title: "Tenants", CSRF: rq.sess.CSRF}
	if err != nil {
		c.apiError(w, "tenants", p, err)
		return
	}
	if len(names) == 1 {
		http.Redirect(w, r, "/t/"+url.PathEscape(names[0])+"/", http.StatusSeeOther)
		return
	}
	p.Tenants = names
	c.render(w, http.StatusOK, "tenants", p)
}

// tenantPage starts the page of the request's tenant; ok is false, and the refusal
// written, when the signed-in token does not see that tenant. The refusal names nothing of
// it: not whether it exists, no link into it.
func (c *Console) tenantPage(w http.ResponseWriter, r *http.Request, rq *request, title string) (page, bool) {
	p := page{Title: title, CSRF: rq.sess.CSRF}
	names, err := c.tenants(r, rq)
	if err != nil {
		c.apiError(w, "tenants", p, err)
		return p, false
	}
	p.Tenants = names
	tenant := r.PathValue("tenant")
	if !slices.Contains(names, tenant) {
		p.Title = "Not yours"
		p.Error = "This tenant is not one your token may see. Sign in with its own token, or go back to yours."
		c.render(w, http.StatusForbidden, "tenants", p)
		return p, false
	}
	p.Tenant = tenant
	rest := strings.TrimPrefix(r.URL.Path, "/t/"+tenant+"/")
	p.Section, _, _ = strings.Cut(rest, "/")
	return p, true
}

// dashboardData is what the dashboard shows of a tenant.
type dashboardData struct {
	Flows                     []*controlplanev1.Resource
	Paused, Held              int
	Today                     eventlogv1.ReportRow
	Integrators               []*controlplanev1.Resource
	RecordsToday, FailedToday int64
}

func (c *Console) dashboard(w http.ResponseWriter, r *http.Request, rq *request) {
	p, ok := c.tenantPage(w, r, rq, "Dashboard")
	if !ok {
		return
	}
	d, err := c.dashboardOf(r.Context(), rq, p.Tenant)
	if err != nil {
		c.apiError(w, "dashboard", p, err)
		return
	}
	p.Data = d
	c.render(w, http.StatusOK, "dashboard", p)
}

// dashboardLive streams the dashboard's figures and flows as they change.
func (c *Console) dashboardLive(w http.ResponseWriter, r *http.Request, rq *request) {
	p, ok := c.tenantPage(w, r, rq, "Dashboard")
	if !ok {
		return
	}
	c.live(w, r, func(ctx context.Context) ([]byte, error) {
		d, err := c.dashboardOf(ctx, rq, p.Tenant)
		if err != nil {
			return nil, err
		}
		p.Data = d
		return c.part("dashboard", "live", p)
	})
}

func (c *Console) dashboardOf(ctx context.Context, rq *request, tenant string) (*dashboardData, error) {
	flows, err := rq.resources.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: "Flow", Tenant: tenant})
	if err != nil {
		return nil, err
	}
	d := &dashboardData{Flows: flows.Resources}
	for _, f := range d.Flows {
		switch f.GetStatus().GetState() {
		case "paused":
			d.Paused++
		case "held":
			d.Held++
		}
	}
	integrators, err := rq.resources.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: "Integrator", Tenant: tenant})
	if err != nil {
		return nil, err
	}
	d.Integrators = integrators.Resources
	today := c.cfg.Now().UTC().Truncate(24 * time.Hour)
	report, err := rq.logs.Report(ctx, &eventlogv1.ReportRequest{Tenant: tenant, From: timestamppb.New(today), To: timestamppb.New(today.Add(24 * time.Hour))})
	if err != nil {
		return nil, err
	}
	for _, row := range report.Rows {
		d.RecordsToday += row.Total
		d.FailedToday += row.Failures
	}
	return d, nil
}

// logsData is the API log page's filter and records.
type logsData struct {
	Filter  url.Values
	Records []*eventlogv1.LogRecord
	// Next is the query of the next page; empty on the last.
	Next string
	// Live says the page is the newest records, which the page keeps up to date.
	Live bool
}

// logFilters are the API log's filters, as query parameters of the page.
var logFilters = []string{"remote_id", "status", "from", "to", "integrator", "flow", "entity", "action"}

func (c *Console) logs(w http.ResponseWriter, r *http.Request, rq *request) {
	p, ok := c.tenantPage(w, r, rq, "API log")
	if !ok {
		return
	}
	d, req, field, err := logQuery(p.Tenant, r.URL.Query())
	p.Data = d
	if err != nil {
		p.FieldErrors = map[string]string{field: err.Error()}
		c.render(w, http.StatusBadRequest, "logs", p)
		return
	}
	if err := d.read(r.Context(), rq, req); err != nil {
		c.apiError(w, "logs", p, err)
		return
	}
	c.render(w, http.StatusOK, "logs", p)
}

// logsLive streams the API log's first page, with the page's filters, as it changes.
func (c *Console) logsLive(w http.ResponseWriter, r *http.Request, rq *request) {
	p, ok := c.tenantPage(w, r, rq, "API log")
	if !ok {
		return
	}
	q := r.URL.Query()
	q.Del("page")
	d, req, field, err := logQuery(p.Tenant, q)
	if err != nil {
		http.Error(w, field+": "+err.Error(), http.StatusBadRequest)
		return
	}
	p.Data = d
	c.live(w, r, func(ctx context.Context) ([]byte, error) {
		if err := d.read(ctx, rq, req); err != nil {
			return nil, err
		}
		return c.part("logs", "records", p)
	})
}

// logQuery reads the API log page's filters from q; a filter that cannot be read is
// returned with its field's name.
func logQuery(tenant string, q url.Values) (*logsData, *eventlogv1.QueryLogsRequest, string, error) {
	d := &logsData{Filter: url.Values{}}
	for _, f := range logFilters {
		if v := strings.TrimSpace(q.Get(f)); v != "" {
			d.Filter.Set(f, v)
		}
	}
	req := &eventlogv1.QueryLogsRequest{Tenant: tenant, RemoteId: d.Filter.Get("remote_id"), Status: d.Filter.Get("status"),
		Integrator: d.Filter.Get("integrator"), Flow: d.Filter.Get("flow"), Entity: d.Filter.Get("entity"), Action: d.Filter.Get("action"),
		PageSize: 50, PageToken: q.Get("page")}
	d.Live = req.PageToken == ""
	for _, t := range []struct {
		field string
		dst   **timestamppb.Timestamp
	}{{"from", &req.From}, {"to", &req.To}} {
		v := d.Filter.Get(t.field)
		if v == "" {
			continue
		}
		at, err := parseDate(v)
		if err != nil {
			return d, nil, t.field, err
		}
		*t.dst = timestamppb.New(at)
	}
	return d, req, "", nil
}

// read queries the API log and keeps the page's records and the query of the next page.
func (d *logsData) read(ctx context.Context, rq *request, req *eventlogv1.QueryLogsRequest) error {
	resp, err := rq.logs.QueryLogs(ctx, req)
	if err != nil {
		return err
	}
	d.Records, d.Next = resp.Records, ""
	if resp.NextPageToken != "" {
		next := url.Values{}
		for k, v := range d.Filter {
			next[k] = v
		}
		next.Set("page", resp.NextPageToken)
		d.Next = next.Encode()
	}
	return nil
}

// part renders the named part of a page's template, for a live update.
func (c *Console) part(pageName, part string, p page) ([]byte, error) {
	var buf bytes.Buffer
	if err := c.pages[pageName].ExecuteTemplate(&buf, part, p); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// parseDate reads a filter's date: a day (2006-01-02, from its midnight UTC) or a time
// (2006-01-02T15:04, UTC, as a datetime-local field sends it).
func parseDate(v string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date: write it as 2026-12-06 or 2026-12-06T14:30 (UTC)", v)
}
