package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	"github.com/syncline/syncline/pkg/bus"
	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/services/controlplane/resource"
)

type resourceHandler struct {
	s *Service
}

var _ controlplanev1connect.ResourceServiceHandler = (*resourceHandler)(nil)

func newResourceHandler(s *Service, opts ...connect.HandlerOption) (string, http.Handler) {
	return controlplanev1connect.NewResourceServiceHandler(&resourceHandler{s: s}, opts...)
}

// item is one resource of an apply, decoded and checked.
type item struct {
	index int
	res   resource.Resource
	// refs are the resources it needs: kind and name within its tenant.
	refs []ref
}

type ref struct{ kind, name string }

// Apply validates every resource first and writes only if all are valid, so a
// bad file changes nothing.
func (h *resourceHandler) Apply(ctx context.Context, req *controlplanev1.ApplyRequest) (*controlplanev1.ApplyResponse, error) {
	s := h.s
	items := make([]item, 0, len(req.Resources))
	for i, r := range req.Resources {
		it, err := s.check(i, r)
		if err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, err)
		}
		items = append(items, it)
	}
	sort.SliceStable(items, func(a, b int) bool { return kindOrder[items[a].res.Kind] < kindOrder[items[b].res.Kind] })

	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.resolve(ctx, items); err != nil {
		return nil, err
	}
	results := make([]*controlplanev1.ApplyResult, len(req.Resources))
	tenants := map[string]bool{}
	for _, it := range items {
		res := &controlplanev1.ApplyResult{Kind: it.res.Kind, Tenant: it.res.Tenant, Name: it.res.Name}
		results[it.index] = res
		cur, err := s.deps.Resources.Get(ctx, it.res.Kind, it.res.Tenant, it.res.Name)
		switch {
		case errors.Is(err, resource.ErrNotFound):
			res.Change = controlplanev1.Change_CHANGE_CREATED
		case err != nil:
			return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("reading %s %s: %w", it.res.Kind, it.res.Name, err))
		case sameJSON(cur.Spec, it.res.Spec):
			res.Change, res.Generation = controlplanev1.Change_CHANGE_UNCHANGED, cur.Generation
		default:
			res.Change, res.Generation = controlplanev1.Change_CHANGE_UPDATED, cur.Generation+1
		}
		if req.DryRun {
			continue
		}
		stored, _, err := s.deps.Resources.Put(ctx, it.res)
		if err != nil {
			return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("storing %s %s: %w", it.res.Kind, it.res.Name, err))
		}
		res.Generation = stored.Generation
		tenants[it.res.Tenant] = true
	}
	for t := range tenants {
		if err := s.publishTenant(ctx, t); err != nil {
			return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("stored, but publishing to the data plane failed (it is retried at the next apply or restart): %w", err))
		}
	}
	return &controlplanev1.ApplyResponse{Results: results}, nil
}

// ListResources lists resources of one kind.
func (h *resourceHandler) ListResources(ctx context.Context, req *controlplanev1.ListResourcesRequest) (*controlplanev1.ListResourcesResponse, error) {
	if _, ok := kindOrder[req.Kind]; !ok {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("kind %q: use Tenant, Integrator, Endpoint or Flow", req.Kind))
	}
	list, err := h.s.deps.Resources.List(ctx, req.Kind, req.Tenant)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("listing %s: %w", req.Kind, err))
	}
	resp := &controlplanev1.ListResourcesResponse{}
	for _, r := range list {
		var spec map[string]any
		if err := json.Unmarshal(r.Spec, &spec); err != nil {
			return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("decoding stored %s %s: %w", r.Kind, r.Name, err))
		}
		if r.Kind == KindEndpoint {
			redactSecrets(h.s.deps.Connectors, spec)
		}
		st, err := structpb.NewStruct(spec)
		if err != nil {
			return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("encoding %s %s: %w", r.Kind, r.Name, err))
		}
		md := &controlplanev1.Metadata{Name: r.Name, Tenant: r.Tenant}
		if r.Kind == KindTenant {
			md.Tenant = ""
		}
		resp.Resources = append(resp.Resources, &controlplanev1.Resource{
			ApiVersion: APIVersion, Kind: r.Kind, Metadata: md, Spec: st,
			Generation: r.Generation, UpdatedAt: timestamppb.New(r.UpdatedAt),
		})
	}
	return resp, nil
}

// redactSecrets hides settings the connector marks secret: they are written,
// never read back.
func redactSecrets(reg *sdk.Registry, spec map[string]any) {
	typ, _ := spec["type"].(string)
	settings, _ := spec["settings"].(map[string]any)
	cs, ok := reg.Spec(typ)
	if !ok || settings == nil {
		return
	}
	for _, f := range cs.Fields {
		if _, set := settings[f.Name]; set && f.Secret {
			settings[f.Name] = "(secret)"
		}
	}
}

// check decodes and validates one resource on its own.
func (s *Service) check(i int, r *controlplanev1.Resource) (item, error) {
	where := fmt.Sprintf("resource %d", i+1)
	if r.GetMetadata().GetName() != "" {
		where = fmt.Sprintf("resource %d (%s %s)", i+1, r.Kind, r.Metadata.Name)
	}
	fail := func(err error) (item, error) { return item{}, fmt.Errorf("%s: %w", where, err) }
	if r.ApiVersion != APIVersion {
		return fail(fmt.Errorf("apiVersion %q: use %s", r.ApiVersion, APIVersion))
	}
	if _, ok := kindOrder[r.Kind]; !ok {
		return fail(fmt.Errorf("kind %q: use Tenant, Integrator, Endpoint or Flow", r.Kind))
	}
	md := r.GetMetadata()
	if err := bus.ValidateToken("metadata.name", md.GetName()); err != nil {
		return fail(err)
	}
	tenant := md.GetTenant()
	if r.Kind == KindTenant {
		if tenant != "" && tenant != md.Name {
			return fail(fmt.Errorf("metadata.tenant %q: a Tenant has no tenant; leave it out", tenant))
		}
		tenant = md.Name
	} else if err := bus.ValidateToken("metadata.tenant", tenant); err != nil {
		return fail(err)
	}
	spec, err := r.GetSpec().MarshalJSON()
	if err != nil || r.GetSpec() == nil {
		spec = []byte("{}")
	}
	it := item{index: i, res: resource.Resource{Kind: r.Kind, Tenant: tenant, Name: md.Name, Spec: spec}}
	if r.Kind != KindTenant {
		it.refs = append(it.refs, ref{KindTenant, tenant})
	}
	switch r.Kind {
	case KindTenant:
		var ts TenantSpec
		err = decodeStrict(spec, &ts)
	case KindIntegrator:
		var is IntegratorSpec
		if err = decodeStrict(spec, &is); err == nil {
			err = is.check()
		}
	case KindEndpoint:
		var es EndpointSpec
		if err = decodeStrict(spec, &es); err == nil {
			err = es.check()
		}
		if err == nil {
			if _, verr := s.deps.Connectors.ValidateSettings(es.Type, es.Settings); verr != nil {
				err = verr
			}
		}
	case KindFlow:
		var fs FlowSpec
		if err = decodeStrict(spec, &fs); err == nil {
			err = fs.check()
		}
		it.refs = append(it.refs, ref{KindIntegrator, fs.Integrator}, ref{KindEndpoint, fs.Source}, ref{KindEndpoint, fs.Target})
	}
	if err != nil {
		return fail(err)
	}
	return it, nil
}

// resolve checks that everything the resources refer to exists, in the
// request or in the store.
func (s *Service) resolve(ctx context.Context, items []item) error {
	inRequest := map[string]bool{}
	for _, it := range items {
		inRequest[it.res.Kind+"/"+it.res.Tenant+"/"+it.res.Name] = true
	}
	for _, it := range items {
		for _, r := range it.refs {
			tenant := it.res.Tenant
			if inRequest[r.kind+"/"+tenant+"/"+r.name] {
				continue
			}
			_, err := s.deps.Resources.Get(ctx, r.kind, tenant, r.name)
			if errors.Is(err, resource.ErrNotFound) {
				return connect.NewError(connect.CodeFailedPrecondition,
					fmt.Errorf("%s %s of tenant %s refers to %s %q, which does not exist: apply it first or in the same file", it.res.Kind, it.res.Name, tenant, r.kind, r.name))
			}
			if err != nil {
				return connect.NewError(connect.CodeInternal, fmt.Errorf("reading %s %s: %w", r.kind, r.name, err))
			}
		}
	}
	return nil
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ca, _ := json.Marshal(x)
	cb, _ := json.Marshal(y)
	return string(ca) == string(cb)
}
