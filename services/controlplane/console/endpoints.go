package console

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"connectrpc.com/connect"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/types/known/structpb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/connector"
)

// The endpoints page: a tenant's endpoints, a form to add one, and each endpoint's page
// (edit, test the connection, delete). Every change is an Apply or a DeleteResource, as
// `syncline apply` and `syncline delete` make them, so every check is the API's.
//
// Credentials are write-only: the forms never show them, not even back after a refusal
// (the user types them again). An edit that gives none keeps the stored ones.

// secretValue is what the API shows for a secret setting or credential, and what an apply
// reads as "keep the stored value".
const secretValue = "(secret)"

// endpointFields maps the fields the API names in a refusal to the form's controls.
var endpointFields = []struct{ api, control string }{
	{"metadata.name", "name"}, {"metadata.uid", "name"}, {"spec.type", "type"},
	{"spec.description", "description"}, {"spec.settings", "settings"}, {"spec.credentials", "credentials"},
}

// endpointForm is an endpoint's form as the user filled it in, shown again when the API
// refuses it. It never holds a credential's value.
type endpointForm struct {
	Name, Type, Description, Settings string
	// UID is the endpoint's identity as the edit form read it: the API refuses the edit
	// when it names another endpoint (a rename) or the endpoint was deleted since.
	UID string
	// Remove names the stored credentials the edit removes.
	Remove map[string]bool
}

// connectorType is a connector type as the forms describe it.
type connectorType struct {
	Type, Kind, Summary string
	// Settings and Credentials name the type's fields, "(required)" after those that are.
	Settings, Credentials []string
}

// endpointRow is an endpoint in the grid.
type endpointRow struct {
	Name, Type, Description string
	// Serves is what it serves or polls, as far as its settings tell without asking it.
	Serves string
	UsedBy []string
}

type endpointsData struct {
	Endpoints []endpointRow
	Types     []connectorType
	Form      endpointForm
	// Done is the confirmation of the change that led here.
	Done string
}

type endpointData struct {
	Form endpointForm
	Type connectorType
	// Credentials name the stored credentials (their values are never read).
	Credentials []string
	UsedBy      []string
	Test        *endpointTest
	Done        string
}

// endpointTest is a "test connection"'s outcome.
type endpointTest struct {
	OK         bool
	Message    string
	Entities   []string
	DurationMs int64
}

func (c *Console) endpoints(w http.ResponseWriter, r *http.Request, rq *request) {
	p, ok := c.tenantPage(w, r, rq, "Endpoints")
	if !ok {
		return
	}
	c.renderEndpoints(w, r, rq, p, http.StatusOK, endpointForm{}, doneNotice(r.URL.Query()))
}

// doneNotice confirms the change a redirect came from.
func doneNotice(q url.Values) string {
	switch {
	case q.Get("added") != "":
		return fmt.Sprintf("Endpoint %s added.", q.Get("added"))
	case q.Get("deleted") != "":
		return fmt.Sprintf("Endpoint %s deleted.", q.Get("deleted"))
	case q.Get("saved") != "":
		return fmt.Sprintf("Endpoint %s saved.", q.Get("saved"))
	}
	return ""
}

// renderEndpoints shows the grid and the add form filled in with f.
func (c *Console) renderEndpoints(w http.ResponseWriter, r *http.Request, rq *request, p page, status int, f endpointForm, done string) {
	d := &endpointsData{Form: f, Types: c.connectorTypes(), Done: done}
	p.Data = d
	eps, err := rq.resources.ListResources(r.Context(), &controlplanev1.ListResourcesRequest{Kind: "Endpoint", Tenant: p.Tenant})
	if err != nil {
		c.apiError(w, "endpoints", p, err)
		return
	}
	users, err := c.endpointUsers(r, rq, p.Tenant)
	if err != nil {
		c.apiError(w, "endpoints", p, err)
		return
	}
	for _, ep := range eps.Resources {
		n := ep.GetMetadata().GetName()
		fields := ep.GetSpec().GetFields()
		typ := fields["type"].GetStringValue()
		d.Endpoints = append(d.Endpoints, endpointRow{Name: n, Type: typ, Description: fields["description"].GetStringValue(),
			Serves: c.serves(typ, fields["settings"].GetStructValue().AsMap(), credentialNames(ep)), UsedBy: users[n]})
	}
	sort.Slice(d.Endpoints, func(i, j int) bool { return d.Endpoints[i].Name < d.Endpoints[j].Name })
	c.render(w, status, "endpoints", p)
}

// endpointUsers returns, per endpoint, the flows of tenant that use it.
func (c *Console) endpointUsers(r *http.Request, rq *request, tenant string) (map[string][]string, error) {
	flows, err := rq.resources.ListResources(r.Context(), &controlplanev1.ListResourcesRequest{Kind: "Flow", Tenant: tenant})
	if err != nil {
		return nil, err
	}
	users := map[string][]string{}
	for _, f := range flows.Resources {
		fields := f.GetSpec().GetFields()
		src, dst := fields["source"].GetStringValue(), fields["target"].GetStringValue()
		users[src] = append(users[src], f.GetMetadata().GetName())
		if dst != src {
			users[dst] = append(users[dst], f.GetMetadata().GetName())
		}
	}
	for _, u := range users {
		sort.Strings(u)
	}
	return users, nil
}

// credentialNames names an endpoint's stored credentials.
func credentialNames(ep *controlplanev1.Resource) []string {
	creds := ep.GetSpec().GetFields()["credentials"].GetStructValue().GetFields()
	return slices.Sorted(maps.Keys(creds))
}

// connectorTypes describes the registered connector types, by type.
func (c *Console) connectorTypes() []connectorType {
	if c.cfg.Connectors == nil {
		return nil
	}
	var out []connectorType
	for _, s := range c.cfg.Connectors.Specs() {
		out = append(out, describeType(s))
	}
	return out
}

func describeType(s connector.Spec) connectorType {
	t := connectorType{Type: s.Type, Kind: string(s.Kind), Summary: s.Summary}
	for _, f := range s.Fields {
		n := f.Name
		if f.Required {
			n += " (required)"
		}
		if f.Credential {
			t.Credentials = append(t.Credentials, n)
		} else {
			t.Settings = append(t.Settings, n)
		}
	}
	return t
}

// serves says what an endpoint serves or polls, from its settings alone: no call to the
// system it names. Empty when the settings do not tell (the type is not registered here).
func (c *Console) serves(typ string, settings map[string]any, creds []string) string {
	if c.cfg.Connectors == nil {
		return ""
	}
	spec, ok := c.cfg.Connectors.Spec(typ)
	if !ok {
		return ""
	}
	merged := maps.Clone(settings)
	if merged == nil {
		merged = map[string]any{}
	}
	for _, k := range creds {
		merged[k] = secretValue
	}
	var parts []string
	if polled, err := c.cfg.Connectors.PolledEntities(typ, merged); err == nil && len(polled) > 0 {
		parts = append(parts, "polls "+strings.Join(entityNames(polled), ", "))
	}
	if spec.Kind == connector.KindTarget && spec.Entities != nil {
		checked, err := c.cfg.Connectors.ValidateSettings(typ, merged)
		if err != nil {
			return ""
		}
		caps, err := spec.Entities(checked)
		if err != nil {
			return ""
		}
		var names []string
		for _, cp := range caps {
			names = append(names, cp.Entity)
		}
		parts = append(parts, "writes "+strings.Join(entityNames(names), ", "))
	}
	if len(parts) == 0 && spec.Kind == connector.KindSource {
		return "publishes its own changes"
	}
	return strings.Join(parts, "; ")
}

func entityNames(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		if n == connector.AnyEntity {
			n = "any entity"
		}
		out[i] = n
	}
	return out
}

// parseEndpointBoxes reads an endpoint form's settings and credentials boxes; a box that
// cannot be read is returned with its field's name.
func parseEndpointBoxes(settings, credentials string) (map[string]any, map[string]string, string, error) {
	s, err := parseSettings(settings)
	if err != nil {
		return nil, nil, "settings", err
	}
	c, err := parseCredentials(credentials)
	if err != nil {
		return nil, nil, "credentials", err
	}
	return s, c, "", nil
}

// addEndpoint applies a new endpoint. An endpoint of that name is not overwritten: Apply
// would update it, so the form refuses the name first.
func (c *Console) addEndpoint(w http.ResponseWriter, r *http.Request, rq *request) {
	p, ok := c.tenantPage(w, r, rq, "Endpoints")
	if !ok {
		return
	}
	f := endpointForm{Name: strings.TrimSpace(r.PostFormValue("name")), Type: strings.TrimSpace(r.PostFormValue("type")),
		Description: r.PostFormValue("description"), Settings: r.PostFormValue("settings")}
	refuse := func(status int) { c.renderEndpoints(w, r, rq, p, status, f, "") }
	if f.Name != "" {
		if _, err := rq.resources.GetResource(r.Context(), &controlplanev1.GetResourceRequest{Kind: "Endpoint", Tenant: p.Tenant, Name: f.Name}); err == nil {
			p.FieldErrors = map[string]string{"name": fmt.Sprintf("an endpoint named %q exists: change it on its own page, or choose another name", f.Name)}
			refuse(http.StatusConflict)
			return
		}
	}
	settings, creds, field, err := parseEndpointBoxes(f.Settings, r.PostFormValue("credentials"))
	if err != nil {
		p.FieldErrors = map[string]string{field: err.Error()}
		refuse(http.StatusBadRequest)
		return
	}
	var given map[string]any
	if len(creds) > 0 {
		given = map[string]any{}
		for k, v := range creds {
			given[k] = v
		}
	}
	if err := c.applyEndpoint(r, rq, p.Tenant, f, settings, given); err != nil {
		p.endpointErrors(err)
		refuse(statusOf(err))
		return
	}
	http.Redirect(w, r, "/t/"+url.PathEscape(p.Tenant)+"/endpoints?added="+url.QueryEscape(f.Name), http.StatusSeeOther)
}

// applyEndpoint applies the endpoint of form f, through the API `syncline apply` uses.
// creds nil keeps the stored credentials.
func (c *Console) applyEndpoint(r *http.Request, rq *request, tenant string, f endpointForm, settings, creds map[string]any) error {
	spec := map[string]any{"type": f.Type, "description": f.Description}
	if settings != nil {
		spec["settings"] = settings
	}
	if creds != nil {
		spec["credentials"] = creds
	}
	st, err := structpb.NewStruct(spec)
	if err != nil {
		return fieldError("spec.settings", fmt.Sprintf("the settings cannot be sent: %v", err))
	}
	_, err = rq.resources.Apply(r.Context(), &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{{
		ApiVersion: "syncline.dev/v1", Kind: "Endpoint",
		Metadata: &controlplanev1.Metadata{Name: f.Name, Tenant: tenant, Uid: f.UID}, Spec: st,
	}}})
	return err
}

// fieldError is a refusal of the console's own, naming a field as the API would.
func fieldError(field, msg string) error {
	ce := connect.NewError(connect.CodeInvalidArgument, errors.New(msg))
	if d, err := connect.NewErrorDetail(&controlplanev1.ErrorDetail{Field: field, Reason: "INVALID_RESOURCE"}); err == nil {
		ce.AddDetail(d)
	}
	return ce
}

// endpointErrors puts a refusal next to the endpoint form's control it names.
func (p *page) endpointErrors(err error) {
	apiFields := make([]string, len(endpointFields))
	for i, f := range endpointFields {
		apiFields[i] = f.api
	}
	p.formErrors(err, apiFields...)
	for _, f := range endpointFields {
		if m, ok := p.FieldErrors[f.api]; ok {
			delete(p.FieldErrors, f.api)
			p.FieldErrors[f.control] = m
		}
	}
}

// endpoint shows an endpoint's page: its form, the test and the delete.
func (c *Console) endpoint(w http.ResponseWriter, r *http.Request, rq *request) {
	p, ok := c.tenantPage(w, r, rq, "Endpoint")
	if !ok {
		return
	}
	d, _, ok := c.endpointPage(w, r, rq, &p)
	if !ok {
		return
	}
	d.Done = doneNotice(r.URL.Query())
	c.render(w, http.StatusOK, "endpoint", p)
}

// endpointPage reads the endpoint of the request's path and what its page shows besides
// the form; ok is false, and the refusal written, when the API refuses.
func (c *Console) endpointPage(w http.ResponseWriter, r *http.Request, rq *request, p *page) (*endpointData, *controlplanev1.Resource, bool) {
	name := r.PathValue("name")
	p.Title = "Endpoint " + name
	d := &endpointData{}
	resp, err := rq.resources.GetResource(r.Context(), &controlplanev1.GetResourceRequest{Kind: "Endpoint", Tenant: p.Tenant, Name: name})
	if err != nil {
		c.apiError(w, "endpoint", *p, err)
		return nil, nil, false
	}
	ep := resp.Resource
	users, err := c.endpointUsers(r, rq, p.Tenant)
	if err != nil {
		c.apiError(w, "endpoint", *p, err)
		return nil, nil, false
	}
	// Set only now: a refusal shows no form.
	p.Data = d
	d.UsedBy = users[name]
	d.Form = formOf(ep)
	d.Credentials = credentialNames(ep)
	typ := ep.GetSpec().GetFields()["type"].GetStringValue()
	d.Type = connectorType{Type: typ}
	if c.cfg.Connectors != nil {
		if s, ok := c.cfg.Connectors.Spec(typ); ok {
			d.Type = describeType(s)
		}
	}
	return d, ep, true
}

// formOf is the edit form of a stored endpoint: its settings as YAML, secret ones as
// "(secret)", as the API shows them (an apply reads that as "keep the stored value").
func formOf(ep *controlplanev1.Resource) endpointForm {
	fields := ep.GetSpec().GetFields()
	f := endpointForm{Name: ep.GetMetadata().GetName(), UID: ep.GetMetadata().GetUid(),
		Type: fields["type"].GetStringValue(), Description: fields["description"].GetStringValue()}
	if s := fields["settings"].GetStructValue().AsMap(); len(s) > 0 {
		b, err := yaml.Marshal(s)
		if err == nil {
			f.Settings = string(b)
		}
	}
	return f
}

// saveEndpoint applies an edit: the description and the settings; the name and type stay.
// The name is sent as the form gives it, with the endpoint's uid, so that a form sent with
// another name is refused by the API as the rename it is.
func (c *Console) saveEndpoint(w http.ResponseWriter, r *http.Request, rq *request) {
	p, ok := c.tenantPage(w, r, rq, "Endpoint")
	if !ok {
		return
	}
	d, ep, ok := c.endpointPage(w, r, rq, &p)
	if !ok {
		return
	}
	f := endpointForm{Name: strings.TrimSpace(r.PostFormValue("name")), UID: r.PostFormValue("uid"),
		Type: ep.GetSpec().GetFields()["type"].GetStringValue(), Description: r.PostFormValue("description"),
		Settings: r.PostFormValue("settings"), Remove: map[string]bool{}}
	for _, k := range r.PostForm["remove"] {
		f.Remove[k] = true
	}
	d.Form = f
	refuse := func(status int) { c.render(w, status, "endpoint", p) }
	if f.UID == "" {
		p.FieldErrors = map[string]string{"name": "the form does not say which endpoint it edits (its uid is missing): reload the page and send it again"}
		refuse(http.StatusBadRequest)
		return
	}
	settings, creds, field, err := parseEndpointBoxes(f.Settings, r.PostFormValue("credentials"))
	if err != nil {
		p.FieldErrors = map[string]string{field: err.Error()}
		refuse(http.StatusBadRequest)
		return
	}
	given := editedCredentials(d.Credentials, creds, f.Remove)
	if err := c.applyEndpoint(r, rq, p.Tenant, f, settings, given); err != nil {
		p.endpointErrors(err)
		// The page is the stored endpoint's: a rename refused shows its name.
		d.Form.Name = r.PathValue("name")
		refuse(statusOf(err))
		return
	}
	http.Redirect(w, r, "/t/"+url.PathEscape(p.Tenant)+"/endpoints/"+url.PathEscape(f.Name)+"?saved="+url.QueryEscape(f.Name), http.StatusSeeOther)
}

// editedCredentials are the credentials an edit applies: those it gives, and every stored
// one it neither gives nor removes as "(secret)", which keeps the stored value. They are
// always named, not left out: the API checks the settings with the credentials given (a
// bearer token is required with auth bearer) before it keeps stored ones left out. nil
// when none is stored or given; an empty map removes every stored one.
func editedCredentials(stored []string, given map[string]string, remove map[string]bool) map[string]any {
	if len(stored) == 0 && len(given) == 0 {
		return nil
	}
	out := map[string]any{}
	for _, k := range stored {
		if !remove[k] {
			out[k] = secretValue
		}
	}
	for k, v := range given {
		out[k] = v
	}
	return out
}

// testEndpoint tests the endpoint's connection and shows the outcome on its page.
func (c *Console) testEndpoint(w http.ResponseWriter, r *http.Request, rq *request) {
	p, ok := c.tenantPage(w, r, rq, "Endpoint")
	if !ok {
		return
	}
	d, _, ok := c.endpointPage(w, r, rq, &p)
	if !ok {
		return
	}
	resp, err := rq.resources.TestEndpoint(r.Context(), &controlplanev1.TestEndpointRequest{Tenant: p.Tenant, Name: d.Form.Name})
	if err != nil {
		// A test that cannot be tried (a source that publishes its own changes) is its outcome.
		d.Test = &endpointTest{Message: refusalOf(err).Message}
	} else {
		d.Test = &endpointTest{OK: resp.Ok, Message: resp.Message, Entities: resp.Entities, DurationMs: resp.DurationMs}
	}
	c.render(w, http.StatusOK, "endpoint", p)
}

func (c *Console) confirmDeleteEndpoint(w http.ResponseWriter, r *http.Request, rq *request) {
	p, ok := c.tenantPage(w, r, rq, "Endpoint")
	if !ok {
		return
	}
	if _, _, ok := c.endpointPage(w, r, rq, &p); !ok {
		return
	}
	p.Title = "Delete endpoint " + r.PathValue("name")
	c.render(w, http.StatusOK, "endpoint_delete", p)
}

// deleteEndpoint deletes the endpoint; the API refuses one that flows use, naming them.
func (c *Console) deleteEndpoint(w http.ResponseWriter, r *http.Request, rq *request) {
	p, ok := c.tenantPage(w, r, rq, "Endpoint")
	if !ok {
		return
	}
	if _, _, ok := c.endpointPage(w, r, rq, &p); !ok {
		return
	}
	p.Title = "Delete endpoint " + r.PathValue("name")
	_, err := rq.resources.DeleteResource(r.Context(), &controlplanev1.DeleteResourceRequest{Kind: "Endpoint", Tenant: p.Tenant, Name: r.PathValue("name")})
	if err != nil {
		c.apiError(w, "endpoint_delete", p, err)
		return
	}
	http.Redirect(w, r, "/t/"+url.PathEscape(p.Tenant)+"/endpoints?deleted="+url.QueryEscape(r.PathValue("name")), http.StatusSeeOther)
}

// maxSettings bounds the settings box: the API takes no resource larger.
const maxSettings = 256 << 10

// parseSettings reads the settings box: a mapping of names to values in YAML or JSON
// (JSON is YAML); nil when it is empty.
func parseSettings(text string) (map[string]any, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	if len(text) > maxSettings {
		return nil, fmt.Errorf("the settings are %d bytes, above the %d an endpoint may have: shorten them", len(text), maxSettings)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return nil, fmt.Errorf("the settings are neither YAML nor JSON (%v): write one name and value a line, as driver: sqlite", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	v, err := yamlValue("", doc.Content[0])
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("the settings are a mapping of names to values, as driver: sqlite (one a line), or a JSON object")
	}
	return m, nil
}

// yamlValue converts a YAML node to the values the API takes: a date stays the text
// written, and aliases are refused (they could make a small text expand into a huge one).
func yamlValue(path string, n *yaml.Node) (any, error) {
	at := func() string {
		if path == "" {
			return fmt.Sprintf("line %d", n.Line)
		}
		return fmt.Sprintf("%s (line %d)", path, n.Line)
	}
	switch n.Kind {
	case yaml.AliasNode:
		return nil, fmt.Errorf("%s: anchors and aliases (*%s) are not taken here: write the value out", at(), n.Value)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("%s: a name is text, not a list or mapping", at())
			}
			key := k.Value
			if path != "" {
				key = path + "." + k.Value
			}
			if _, dup := m[k.Value]; dup {
				return nil, fmt.Errorf("%s is given twice (line %d): keep one", key, k.Line)
			}
			v, err := yamlValue(key, n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, e := range n.Content {
			v, err := yamlValue(fmt.Sprintf("%s[%d]", path, i), e)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case yaml.ScalarNode:
		if n.Tag == "!!timestamp" || n.Tag == "!!str" || n.Tag == "!!binary" {
			return n.Value, nil
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s: %v", at(), err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("%s: not a value", at())
}

// parseCredentials reads the credentials box: one name=value a line. The value is taken
// as written after the first "=", spaces included.
func parseCredentials(text string) (map[string]string, error) {
	out := map[string]string{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			// The line is not repeated: it may be a value.
			return nil, fmt.Errorf("line %d is not name=value: write each credential as password=its value, one a line", i+1)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("line %d gives credential %s again: keep one", i+1, name)
		}
		out[name] = value
	}
	return out, nil
}
