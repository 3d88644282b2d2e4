package console

import (
	"net/http"
	"net/url"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/integrator"
)

// The integrators' pages: the list, and one integrator with its stage, its token, its
// services and its flows.
func (c *Console) integratorRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /t/{tenant}/integrators", c.signedIn(c.integrators))
	mux.HandleFunc("GET /t/{tenant}/integrators/{name}", c.signedIn(c.integrator))
	mux.HandleFunc("POST /t/{tenant}/integrators/{name}/stage", c.signedIn(c.integratorStage))
	mux.HandleFunc("POST /t/{tenant}/integrators/{name}/token", c.signedIn(c.rotateToken))
	mux.HandleFunc("POST /t/{tenant}/integrators/{name}/revoke", c.signedIn(c.revokeToken))
}

// stageOf is an integrator's stage; a spec without one is active, as the API reads it.
func stageOf(r *controlplanev1.Resource) string {
	if s := r.GetSpec().GetFields()["stage"].GetStringValue(); s != "" {
		return s
	}
	return "active"
}

// integratorsData is the list of a tenant's integrators.
type integratorsData struct {
	Integrators []*controlplanev1.Resource
	// Flows counts each integrator's flows.
	Flows map[string]int
}

func (c *Console) integrators(w http.ResponseWriter, r *http.Request, rq *request) {
	p, ok := c.tenantPage(w, r, rq, "Integrators")
	if !ok {
		return
	}
	ctx := r.Context()
	list, err := rq.resources.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: "Integrator", Tenant: p.Tenant})
	if err != nil {
		c.apiError(w, "integrators", p, err)
		return
	}
	flows, err := rq.resources.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: "Flow", Tenant: p.Tenant})
	if err != nil {
		c.apiError(w, "integrators", p, err)
		return
	}
	d := &integratorsData{Integrators: list.Resources, Flows: map[string]int{}}
	for _, f := range flows.Resources {
		d.Flows[f.GetSpec().GetFields()["integrator"].GetStringValue()]++
	}
	p.Data = d
	c.render(w, http.StatusOK, "integrators", p)
}

// integratorData is one integrator's page.
type integratorData struct {
	Name  string
	Stage string
	// StageForm is the stage the form shows: the integrator's, or the one a refused
	// change asked for.
	StageForm  string
	Integrator *controlplanev1.Resource
	Services   []integrator.Service
	Flows      []*controlplanev1.Resource
	// Done says what the last change did (after its redirect).
	Done string
	// Token is a token just made, shown on the page that answers the rotation only.
	Token string
	// SignedOut: the rotated token was the one this session signed in with, which no
	// longer works; the page shows the new token and nothing else of the integrator.
	SignedOut bool
}

// integratorDone are the notices a change's redirect may ask for.
var integratorDone = map[string]string{
	"stage":   "The stage was changed.",
	"revoked": "The token was revoked: it no longer works. Rotate the token to give the integrator a new one.",
}

// integratorOf reads an integrator's page: the integrator, its services and its flows.
func (c *Console) integratorOf(r *http.Request, rq *request, tenant, name string) (*integratorData, error) {
	ctx := r.Context()
	got, err := rq.resources.GetResource(ctx, &controlplanev1.GetResourceRequest{Kind: "Integrator", Tenant: tenant, Name: name})
	if err != nil {
		return nil, err
	}
	flows, err := rq.resources.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: "Flow", Tenant: tenant})
	if err != nil {
		return nil, err
	}
	d := &integratorData{Name: name, Integrator: got.Resource, Stage: stageOf(got.Resource), Services: integrator.Services(name, flows.Resources)}
	d.StageForm = d.Stage
	for _, f := range flows.Resources {
		if f.GetSpec().GetFields()["integrator"].GetStringValue() == name {
			d.Flows = append(d.Flows, f)
		}
	}
	return d, nil
}

func (c *Console) integrator(w http.ResponseWriter, r *http.Request, rq *request) {
	name := r.PathValue("name")
	p, ok := c.tenantPage(w, r, rq, "Integrator "+name)
	if !ok {
		return
	}
	d, err := c.integratorOf(r, rq, p.Tenant, name)
	if err != nil {
		c.apiError(w, "integrator", p, err)
		return
	}
	d.Done = integratorDone[r.URL.Query().Get("done")]
	p.Data = d
	c.render(w, http.StatusOK, "integrator", p)
}

// integratorStage changes an integrator's stage by applying it with the new one: the
// API's transition rules apply, and its refusal is shown next to the stage.
func (c *Console) integratorStage(w http.ResponseWriter, r *http.Request, rq *request) {
	name := r.PathValue("name")
	p, ok := c.tenantPage(w, r, rq, "Integrator "+name)
	if !ok {
		return
	}
	d, err := c.integratorOf(r, rq, p.Tenant, name)
	if err != nil {
		c.apiError(w, "integrator", p, err)
		return
	}
	p.Data = d
	stage := r.PostFormValue("stage")
	if stage != "active" && stage != "inactive" {
		p.FieldErrors = map[string]string{"spec.stage": "choose active or inactive; deleting an integrator is final and done with syncline delete"}
		c.render(w, http.StatusBadRequest, "integrator", p)
		return
	}
	res := d.Integrator
	if res.Spec == nil {
		res.Spec = &structpb.Struct{}
	}
	if res.Spec.Fields == nil {
		res.Spec.Fields = map[string]*structpb.Value{}
	}
	res.Spec.Fields["stage"] = structpb.NewStringValue(stage)
	if _, err := rq.resources.Apply(r.Context(), &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{res}}); err != nil {
		d.StageForm = stage
		p.formErrors(err, "spec.stage")
		c.render(w, statusOf(err), "integrator", p)
		return
	}
	http.Redirect(w, r, "/t/"+url.PathEscape(p.Tenant)+"/integrators/"+url.PathEscape(name)+"?done=stage", http.StatusSeeOther)
}

// rotateToken gives the integrator a new token and shows it on the page that answers,
// this once: it is never put in a URL, and the console keeps no copy.
func (c *Console) rotateToken(w http.ResponseWriter, r *http.Request, rq *request) {
	name := r.PathValue("name")
	p, ok := c.tenantPage(w, r, rq, "Integrator "+name)
	if !ok {
		return
	}
	resp, err := rq.resources.RotateToken(r.Context(), &controlplanev1.RotateTokenRequest{Tenant: p.Tenant, Integrator: name})
	if err != nil {
		d, derr := c.integratorOf(r, rq, p.Tenant, name)
		if derr != nil {
			c.apiError(w, "integrator", p, derr)
			return
		}
		p.Data = d
		c.apiError(w, "integrator", p, err)
		return
	}
	d, err := c.integratorOf(r, rq, p.Tenant, name)
	if connect.CodeOf(err) == connect.CodeUnauthenticated {
		// The session's own token was rotated: the old one is gone, and so is the
		// session. The new token is shown, with the way back in.
		c.sessions.end(w)
		p.CSRF, p.Tenant = "", ""
		p.Data = &integratorData{Name: name, Token: resp.Token, SignedOut: true}
		c.render(w, http.StatusOK, "integrator", p)
		return
	}
	if err != nil {
		c.apiError(w, "integrator", p, err)
		return
	}
	d.Token = resp.Token
	p.Data = d
	c.render(w, http.StatusOK, "integrator", p)
}

// revokeToken takes the integrator's token away, once the form's box confirms it.
func (c *Console) revokeToken(w http.ResponseWriter, r *http.Request, rq *request) {
	name := r.PathValue("name")
	p, ok := c.tenantPage(w, r, rq, "Integrator "+name)
	if !ok {
		return
	}
	d, err := c.integratorOf(r, rq, p.Tenant, name)
	if err != nil {
		c.apiError(w, "integrator", p, err)
		return
	}
	p.Data = d
	if r.PostFormValue("confirm") != "yes" {
		p.FieldErrors = map[string]string{"confirm": "tick the box to confirm: the token stops working at once, and everything that uses it is refused"}
		c.render(w, http.StatusBadRequest, "integrator", p)
		return
	}
	if _, err := rq.resources.RevokeToken(r.Context(), &controlplanev1.RevokeTokenRequest{Tenant: p.Tenant, Integrator: name}); err != nil {
		c.apiError(w, "integrator", p, err)
		return
	}
	if _, err := rq.resources.ListResources(r.Context(), &controlplanev1.ListResourcesRequest{Kind: "Tenant"}); connect.CodeOf(err) == connect.CodeUnauthenticated {
		// The session's own token was revoked.
		c.sessions.end(w)
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/t/"+url.PathEscape(p.Tenant)+"/integrators/"+url.PathEscape(name)+"?done=revoked", http.StatusSeeOther)
}
