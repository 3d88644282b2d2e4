package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
)

// The flows' pages: the list, and one flow with its state, its polls, its mapping and a
// box that tries a sample record.
func (c *Console) flowRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /t/{tenant}/flows", c.signedIn(c.flows))
	mux.HandleFunc("GET /t/{tenant}/flows/{name}", c.signedIn(c.flow))
	mux.HandleFunc("POST /t/{tenant}/flows/{name}/sync", c.signedIn(c.syncFlow))
	mux.HandleFunc("POST /t/{tenant}/flows/{name}/try", c.signedIn(c.tryFlow))
}

func (c *Console) flows(w http.ResponseWriter, r *http.Request, rq *request) {
	p, ok := c.tenantPage(w, r, rq, "Flows")
	if !ok {
		return
	}
	list, err := rq.resources.ListResources(r.Context(), &controlplanev1.ListResourcesRequest{Kind: "Flow", Tenant: p.Tenant})
	if err != nil {
		c.apiError(w, "flows", p, err)
		return
	}
	p.Data = list.Resources
	c.render(w, http.StatusOK, "flows", p)
}

// flowData is one flow's page.
type flowData struct {
	Name string
	Flow *controlplanev1.Resource
	// Schedule says when the source is read; Mapping is the spec's mapping, as JSON.
	Schedule, Mapping string
	Done              string
	Try               tryData
}

// tryData is the "try it" form: what was sent, and what the flow would do with it.
type tryData struct {
	Record, Key string
	Result      *controlplanev1.TestFlowResponse
	// Mapped is the result's mapped record, as JSON.
	Mapped string
}

// sampleExample is the try box's placeholder.
const sampleExample = `{"number": "SO-1001", "status": "paid", "total": 99.5}`

// maxSample bounds a sample record, as the ingest API bounds a record.
const maxSample = 512 << 10

func (c *Console) flowOf(r *http.Request, rq *request, tenant, name string) (*flowData, error) {
	got, err := rq.resources.GetResource(r.Context(), &controlplanev1.GetResourceRequest{Kind: "Flow", Tenant: tenant, Name: name})
	if err != nil {
		return nil, err
	}
	d := &flowData{Name: name, Flow: got.Resource, Schedule: scheduleOf(got.Resource)}
	if m := got.Resource.GetSpec().GetFields()["mapping"]; m != nil {
		d.Mapping = prettyJSON(m.AsInterface())
	}
	return d, nil
}

// scheduleOf says when a flow reads its source.
func scheduleOf(f *controlplanev1.Resource) string {
	s := f.GetSpec().GetFields()["schedule"].GetStructValue().GetFields()
	str := func(k string) string { return s[k].GetStringValue() }
	switch str("mode") {
	case "interval":
		return "every " + str("every")
	case "cron":
		tz := str("timezone")
		if tz == "" {
			tz = "UTC"
		}
		return fmt.Sprintf("cron %s (%s)", str("cron"), tz)
	case "", "realtime":
		return "realtime: the source publishes its changes"
	}
	return str("mode")
}

// prettyJSON writes v as indented JSON, for a page to show.
func prettyJSON(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// flowDone are the notices a change's redirect may ask for.
var flowDone = map[string]string{
	"sync": "A poll of the source was asked for: it starts within a second or so; reload to see how it went.",
}

func (c *Console) flow(w http.ResponseWriter, r *http.Request, rq *request) {
	name := r.PathValue("name")
	p, ok := c.tenantPage(w, r, rq, "Flow "+name)
	if !ok {
		return
	}
	d, err := c.flowOf(r, rq, p.Tenant, name)
	if err != nil {
		c.apiError(w, "flow", p, err)
		return
	}
	d.Done = flowDone[r.URL.Query().Get("done")]
	p.Data = d
	c.render(w, http.StatusOK, "flow", p)
}

// syncFlow asks for a poll of the flow's source now.
func (c *Console) syncFlow(w http.ResponseWriter, r *http.Request, rq *request) {
	name := r.PathValue("name")
	p, ok := c.tenantPage(w, r, rq, "Flow "+name)
	if !ok {
		return
	}
	_, err := rq.resources.SyncFlow(r.Context(), &controlplanev1.SyncFlowRequest{Tenant: p.Tenant, Flow: name, FromStart: r.PostFormValue("from_start") == "yes"})
	if err != nil {
		d, derr := c.flowOf(r, rq, p.Tenant, name)
		if derr != nil {
			c.apiError(w, "flow", p, derr)
			return
		}
		p.Data = d
		c.apiError(w, "flow", p, err)
		return
	}
	http.Redirect(w, r, "/t/"+url.PathEscape(p.Tenant)+"/flows/"+url.PathEscape(name)+"?done=sync", http.StatusSeeOther)
}

// tryFlow maps the form's sample record as the flow would and shows what its target
// would do with it. It changes nothing, so it answers the POST with the page itself.
func (c *Console) tryFlow(w http.ResponseWriter, r *http.Request, rq *request) {
	name := r.PathValue("name")
	p, ok := c.tenantPage(w, r, rq, "Flow "+name)
	if !ok {
		return
	}
	d, err := c.flowOf(r, rq, p.Tenant, name)
	if err != nil {
		c.apiError(w, "flow", p, err)
		return
	}
	p.Data = d
	d.Try = tryData{Record: r.PostFormValue("record"), Key: strings.TrimSpace(r.PostFormValue("key"))}
	record, err := parseSample(d.Try.Record)
	if err != nil {
		p.FieldErrors = map[string]string{"record": err.Error()}
		c.render(w, http.StatusBadRequest, "flow", p)
		return
	}
	resp, err := rq.resources.TestFlow(r.Context(), &controlplanev1.TestFlowRequest{Tenant: p.Tenant, Flow: name, Record: record, Key: d.Try.Key})
	if err != nil {
		p.formErrors(err, "record", "key")
		c.render(w, statusOf(err), "flow", p)
		return
	}
	d.Try.Result = resp
	if resp.Mapped != nil {
		d.Try.Mapped = prettyJSON(resp.Mapped.AsMap())
	}
	c.render(w, http.StatusOK, "flow", p)
}

// parseSample reads the try box's record: one JSON object. What is wrong is said with
// where (line and column), as an editor shows it.
func parseSample(s string) (*structpb.Struct, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("paste a sample source record: a JSON object, as the source sends it, e.g. " + sampleExample)
	}
	if len(s) > maxSample {
		return nil, fmt.Errorf("the record is %d KiB, more than the %d KiB a change event carries", len(s)>>10, maxSample>>10)
	}
	dec := json.NewDecoder(strings.NewReader(s))
	var m map[string]any
	err := dec.Decode(&m)
	if err == nil {
		if rest := strings.TrimLeft(s[dec.InputOffset():], " \t\r\n"); rest != "" {
			line, col := where(s, int64(len(s)-len(rest)))
			return nil, fmt.Errorf("more follows the record at line %d, column %d: give one JSON object", line, col)
		}
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		// Offset is past the character that is wrong.
		line, col := where(s, syntax.Offset-1)
		return nil, fmt.Errorf("not valid JSON at line %d, column %d: %s", line, col, syntax.Error())
	case errors.As(err, &typ):
		return nil, fmt.Errorf("the record is a JSON %s, not an object: give one JSON object, e.g. %s", typ.Value, sampleExample)
	case errors.Is(err, io.ErrUnexpectedEOF):
		line, col := where(s, int64(len(s)))
		return nil, fmt.Errorf("the JSON ends too early, at line %d, column %d: a bracket or a quote is not closed", line, col)
	case err != nil:
		return nil, fmt.Errorf("not valid JSON: %v", err)
	case m == nil:
		return nil, errors.New("the record is null: give one JSON object, e.g. " + sampleExample)
	}
	return structpb.NewStruct(m)
}

// where is the line and column (from 1, in characters) of byte offset off in s.
func where(s string, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(s)))
	before := s[:off]
	line = strings.Count(before, "\n") + 1
	col = len([]rune(before[strings.LastIndexByte(before, '\n')+1:])) + 1
	return line, col
}
