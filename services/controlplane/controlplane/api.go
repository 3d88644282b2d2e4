package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/flowstate"
	"github.com/syncline/syncline/pkg/mapping"
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
	uid   string
	// refs are the resources it needs: kind and name within its tenant.
	refs []ref
	// credentials are an endpoint's credentials as given (nil: keep the
	// stored ones); changedCredentials name those an apply changes.
	credentials        map[string]string
	changedCredentials []string
}

type ref struct{ kind, name string }

func (it *item) name() string { return name(it.res.Kind, it.res.Tenant, it.res.Name) }

// Apply validates every resource first and writes only if all are valid, so a
// bad file changes nothing.
func (h *resourceHandler) Apply(ctx context.Context, req *controlplanev1.ApplyRequest) (*controlplanev1.ApplyResponse, error) {
	s := h.s
	if n := len(req.Resources); n > MaxResourcesPerApply {
		return nil, apiError(connect.CodeInvalidArgument, ReasonInvalid, "", "apply them in several smaller applies",
			fieldErr("resources", "are %s, above the limit of %s per apply", thousands(n), thousands(MaxResourcesPerApply)))
	}
	items := make([]item, 0, len(req.Resources))
	size := 0
	for i, r := range req.Resources {
		it, err := s.check(i, r)
		if err != nil {
			return nil, err
		}
		if size += len(it.res.Spec); size > MaxApplySize {
			return nil, apiError(connect.CodeInvalidArgument, ReasonInvalid, it.name(), "apply the resources in several smaller applies",
				fieldErr("resources", "add up to %s bytes as JSON up to this one, above the limit of %s bytes (8 MiB) per apply", thousands(size), thousands(MaxApplySize)))
		}
		if err := authorize(ctx, it.res.Kind, it.res.Tenant); err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	sort.SliceStable(items, func(a, b int) bool { return kindOrder[items[a].res.Kind] < kindOrder[items[b].res.Kind] })

	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.resolve(ctx, items); err != nil {
		return nil, err
	}
	type planned struct {
		it      *item
		result  *controlplanev1.ApplyResult
		create  bool
		changed bool
	}
	plan := make([]planned, 0, len(items))
	// First decide every change, so that a refusal (a stage transition, a
	// rename, credentials without a master key) leaves everything as it was.
	for i := range items {
		it := &items[i]
		res := &controlplanev1.ApplyResult{Kind: it.res.Kind, Tenant: it.res.Tenant, Name: it.res.Name}
		cur, err := s.deps.Resources.Get(ctx, it.res.Kind, it.res.Tenant, it.res.Name)
		exists := err == nil
		if err != nil && !errors.Is(err, resource.ErrNotFound) {
			return nil, storeError(it.name(), err)
		}
		if err := s.checkIdentity(ctx, it, cur, exists); err != nil {
			return nil, err
		}
		var old json.RawMessage
		if exists {
			old = cur.Spec
			if err := s.checkChange(it, cur); err != nil {
				return nil, err
			}
		}
		if it.res.Kind == KindEndpoint {
			if err := s.keepSecretSettings(it, old); err != nil {
				return nil, err
			}
			if err := s.checkEgress(ctx, it, items); err != nil {
				return nil, err
			}
			if err := s.sealCredentials(it, old); err != nil {
				return nil, err
			}
		}
		if it.res.Kind == KindTenant {
			if err := s.sealAlertSecret(it, old); err != nil {
				return nil, err
			}
		}
		p := planned{it: it, result: res, create: !exists}
		switch {
		case !exists:
			res.Change = controlplanev1.Change_CHANGE_CREATED
		case sameJSON(cur.Spec, it.res.Spec):
			res.Change, res.Generation = controlplanev1.Change_CHANGE_UNCHANGED, cur.Generation
		default:
			res.Change, res.Generation = controlplanev1.Change_CHANGE_UPDATED, cur.Generation+1
		}
		p.changed = res.Change != controlplanev1.Change_CHANGE_UNCHANGED
		if p.changed {
			d, err := s.specDiff(it.res.Kind, old, it.res.Spec, it.changedCredentials)
			if err != nil {
				return nil, apiError(connect.CodeInternal, ReasonInternal, it.name(), "", err)
			}
			res.Diff = d
		}
		plan = append(plan, p)
	}
	results := make([]*controlplanev1.ApplyResult, len(req.Resources))
	overlay := afterApply{store: s.deps.Resources, changes: map[string]resource.Resource{}}
	for _, p := range plan {
		results[p.it.index] = p.result
		if p.changed {
			r := p.it.res
			r.Generation = max(p.result.Generation, 1)
			overlay.changes[r.Kind+"/"+r.Tenant+"/"+r.Name] = r
		}
	}
	// Everything publishing can refuse is checked before anything is
	// stored, so that the store and the data plane never disagree.
	if err := s.checkPublishable(ctx, overlay); err != nil {
		return nil, err
	}
	if req.DryRun {
		return &controlplanev1.ApplyResponse{Results: results}, nil
	}
	tenants := map[string]bool{}
	for _, p := range plan {
		it := p.it
		if !p.changed {
			// Nothing to write, and nothing for the data plane to learn.
			continue
		}
		stored, _, err := s.deps.Resources.Put(ctx, it.res)
		if err != nil {
			return nil, storeError(it.name(), err)
		}
		p.result.Generation = stored.Generation
		tenants[it.res.Tenant] = true
		if it.res.Kind == KindIntegrator && p.create {
			token, err := s.newToken(ctx, it.res.Tenant, it.res.Name)
			if err != nil {
				return nil, err
			}
			p.result.Token = token
		}
		if it.res.Kind == KindIntegrator && integratorStage(it.res.Spec) == StageDeleted {
			if _, err := s.deps.Resources.DeleteToken(ctx, it.res.Tenant, it.res.Name); err != nil {
				return nil, storeError(it.name(), err)
			}
		}
	}
	for t := range tenants {
		// Tokens first: a revocation must not wait on the flows compiling.
		if err := s.publishTokens(ctx, t); err != nil {
			return nil, unpublished(err)
		}
		if err := s.publishTenant(ctx, t); err != nil {
			return nil, unpublished(err)
		}
	}
	return &controlplanev1.ApplyResponse{Results: results}, nil
}

func unpublished(err error) *connect.Error {
	return apiError(connect.CodeUnavailable, ReasonUnavailable, "", "it is retried at the next change or restart of the control plane",
		fmt.Errorf("stored, but publishing to the data plane failed: %w", err))
}

// authorize checks that the caller may change a resource: tenants are the
// operators' (admin token); everything else its own tenant's.
func authorize(ctx context.Context, kind, tenant string) error {
	if kind == KindTenant {
		return auth.Admin(ctx, "creating or changing a tenant")
	}
	_, err := auth.Tenant(ctx, tenant)
	return err
}

// checkIdentity refuses a rename: a resource given with the uid of an
// existing resource of another name.
func (s *Service) checkIdentity(ctx context.Context, it *item, cur resource.Resource, exists bool) error {
	if it.uid == "" || (exists && uid(cur) == it.uid) {
		return nil
	}
	list, err := s.deps.Resources.List(ctx, it.res.Kind, it.res.Tenant)
	if err != nil {
		return storeError(it.name(), err)
	}
	for _, r := range list {
		if uid(r) == it.uid && r.Name != it.res.Name {
			return apiError(connect.CodeFailedPrecondition, ReasonNameImmutable, it.name(),
				fmt.Sprintf("apply it without metadata.uid to create a new %s; %s %q stays as it is", it.res.Kind, it.res.Kind, r.Name),
				fieldErr("metadata.name", "names are immutable: uid %s is %s %q, which cannot be renamed to %q", it.uid, it.res.Kind, r.Name, it.res.Name))
		}
	}
	if exists {
		return apiError(connect.CodeFailedPrecondition, ReasonNameImmutable, it.name(),
			"leave metadata.uid out to apply to the resource that has this name now",
			fieldErr("metadata.uid", "%s belongs to no resource of this name: it was deleted and created again", it.uid))
	}
	return nil
}

// checkChange refuses changes a resource cannot make.
func (s *Service) checkChange(it *item, cur resource.Resource) error {
	if it.res.Kind == KindIntegrator {
		if err := checkTransition(integratorStage(cur.Spec), integratorStage(it.res.Spec)); err != nil {
			return apiError(connect.CodeFailedPrecondition, ReasonStageTransition, it.name(), "", err)
		}
	}
	return nil
}

func integratorStage(spec json.RawMessage) string {
	var is IntegratorSpec
	_ = json.Unmarshal(spec, &is)
	if is.Stage == "" {
		return StageActive
	}
	return is.Stage
}

// uid is a resource's identity: new each time a resource of its name is
// created (it hashes the creation time), the same for its whole life.
func uid(r resource.Resource) string {
	sum := sha256.Sum256([]byte(r.Kind + "/" + r.Tenant + "/" + r.Name + "/" + strconv.FormatInt(r.CreatedAt.UnixMicro(), 10)))
	return hex.EncodeToString(sum[:8])
}

// ListResources lists resources of one kind: an integrator token sees its
// own tenant's only.
func (h *resourceHandler) ListResources(ctx context.Context, req *controlplanev1.ListResourcesRequest) (*controlplanev1.ListResourcesResponse, error) {
	if _, ok := kindOrder[req.Kind]; !ok {
		return nil, badKind(req.Kind)
	}
	tenant, err := auth.Tenant(ctx, req.Tenant)
	if err != nil {
		return nil, err
	}
	list, err := h.s.deps.Resources.List(ctx, req.Kind, tenant)
	if err != nil {
		return nil, storeError(req.Kind, err)
	}
	resp := &controlplanev1.ListResourcesResponse{}
	for _, r := range list {
		pr, err := h.s.toProto(r)
		if err != nil {
			return nil, err
		}
		resp.Resources = append(resp.Resources, pr)
	}
	if req.Kind == KindFlow {
		h.s.addFlowStatus(ctx, tenant, resp.Resources)
	}
	return resp, nil
}

// addFlowStatus sets the status of flows (resources of kind Flow of tenant,
// "" for every tenant) from the data plane. The status is for people
// looking: when the bus cannot tell, the flows are shown without it rather
// than not at all, and the reason is logged.
func (s *Service) addFlowStatus(ctx context.Context, tenant string, flows []*controlplanev1.Resource) {
	if len(flows) == 0 {
		return
	}
	integrators, err := s.deps.Resources.List(ctx, KindIntegrator, tenant)
	if err != nil {
		s.log.Warn("reading integrators for the flows' status", "tenant", tenant, "error", err)
		return
	}
	stages := make(map[string]string, len(integrators))
	for _, in := range integrators {
		stages[in.Tenant+"/"+in.Name] = integratorStage(in.Spec)
	}
	refs := make([]flowstate.Flow, len(flows))
	for i, f := range flows {
		t := f.GetMetadata().GetTenant()
		refs[i] = flowstate.Flow{Tenant: t, Name: f.GetMetadata().GetName(),
			IntegratorStage: stages[t+"/"+f.GetSpec().GetFields()["integrator"].GetStringValue()]}
	}
	states, err := flowstate.Read(ctx, s.deps.JetStream, tenant, refs)
	if err != nil {
		s.log.Warn("reading the flows' status from the bus", "tenant", tenant, "error", err)
		return
	}
	for i, st := range states {
		ps := &controlplanev1.FlowStatus{State: st.State, Waiting: st.Waiting}
		if p := st.Pause; p != nil {
			ps.LastError, ps.Since, ps.Failures = p.LastError, timestamppb.New(p.Since), int32(p.Failures)
		}
		if ps.Polls, err = s.pollsOf(ctx, tenant, flows[i]); err != nil {
			s.log.Warn("reading a flow's source polls from the bus", "tenant", tenant, "flow", refs[i].Name, "error", err)
		}
		flows[i].Status = ps
	}
}

func badKind(kind string) *connect.Error {
	return apiError(connect.CodeInvalidArgument, ReasonInvalid, "", "use Tenant, Integrator, Endpoint or Flow",
		fieldErr("kind", "%q is not a kind", kind))
}

// target resolves a request's kind, tenant and name, checking the caller
// may use that tenant. A Tenant's tenant is its name.
func target(ctx context.Context, kind, tenant, n string) (string, error) {
	if _, ok := kindOrder[kind]; !ok {
		return "", badKind(kind)
	}
	if kind == KindTenant {
		tenant = n
	}
	if err := bus.ValidateToken("name", n); err != nil {
		return "", apiError(connect.CodeInvalidArgument, ReasonInvalid, "", "", fieldErr("name", "%v", err))
	}
	tenant, err := auth.Tenant(ctx, tenant)
	if err != nil {
		return "", err
	}
	if err := bus.ValidateToken("tenant", tenant); err != nil {
		return "", apiError(connect.CodeInvalidArgument, ReasonInvalid, "", "", fieldErr("tenant", "%v (the admin token must name the tenant)", err))
	}
	return tenant, nil
}

// GetResource returns one resource.
func (h *resourceHandler) GetResource(ctx context.Context, req *controlplanev1.GetResourceRequest) (*controlplanev1.GetResourceResponse, error) {
	tenant, err := target(ctx, req.Kind, req.Tenant, req.Name)
	if err != nil {
		return nil, err
	}
	r, err := h.s.deps.Resources.Get(ctx, req.Kind, tenant, req.Name)
	if err != nil {
		return nil, storeError(name(req.Kind, tenant, req.Name), err)
	}
	pr, err := h.s.toProto(r)
	if err != nil {
		return nil, err
	}
	if req.Kind == KindFlow {
		h.s.addFlowStatus(ctx, tenant, []*controlplanev1.Resource{pr})
	}
	return &controlplanev1.GetResourceResponse{Resource: pr}, nil
}

// toProto renders a stored resource for the API: credentials show only
// which are set.
func (s *Service) toProto(r resource.Resource) (*controlplanev1.Resource, error) {
	spec, err := s.publicSpec(r.Kind, r.Spec)
	if err != nil {
		return nil, apiError(connect.CodeInternal, ReasonInternal, name(r.Kind, r.Tenant, r.Name), "", err)
	}
	st, err := structpb.NewStruct(spec)
	if err != nil {
		return nil, apiError(connect.CodeInternal, ReasonInternal, name(r.Kind, r.Tenant, r.Name), "", err)
	}
	md := &controlplanev1.Metadata{Name: r.Name, Tenant: r.Tenant, Uid: uid(r)}
	if r.Kind == KindTenant {
		md.Tenant = ""
	}
	return &controlplanev1.Resource{
		ApiVersion: APIVersion, Kind: r.Kind, Metadata: md, Spec: st,
		Generation: r.Generation, UpdatedAt: timestamppb.New(r.UpdatedAt),
	}, nil
}

// DeleteResource deletes one resource; see the proto for what each kind's
// delete does.
func (h *resourceHandler) DeleteResource(ctx context.Context, req *controlplanev1.DeleteResourceRequest) (*controlplanev1.DeleteResourceResponse, error) {
	s := h.s
	tenant, err := target(ctx, req.Kind, req.Tenant, req.Name)
	if err != nil {
		return nil, err
	}
	if req.Kind == KindTenant {
		if err := auth.Admin(ctx, "deleting a tenant"); err != nil {
			return nil, err
		}
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	res := name(req.Kind, tenant, req.Name)
	cur, err := s.deps.Resources.Get(ctx, req.Kind, tenant, req.Name)
	if err != nil {
		return nil, storeError(res, err)
	}
	var removed map[string]int64
	switch req.Kind {
	case KindTenant:
		removed, err = s.deleteTenant(ctx, tenant)
		if err != nil {
			return nil, err
		}
		return &controlplanev1.DeleteResourceResponse{Removed: removedList(removed)}, nil
	case KindIntegrator:
		removed, err = s.deleteIntegrator(ctx, cur)
	case KindEndpoint:
		if err := s.checkUnused(ctx, cur); err != nil {
			return nil, err
		}
		removed = map[string]int64{KindEndpoint: 1}
		err = s.deps.Resources.Delete(ctx, req.Kind, tenant, req.Name)
	case KindFlow:
		removed = map[string]int64{KindFlow: 1}
		err = s.deps.Resources.Delete(ctx, req.Kind, tenant, req.Name)
	}
	if err != nil {
		return nil, storeError(res, err)
	}
	if err := s.publishTokens(ctx, tenant); err != nil {
		return nil, unpublished(err)
	}
	if err := s.publishTenant(ctx, tenant); err != nil {
		return nil, unpublished(err)
	}
	return &controlplanev1.DeleteResourceResponse{Removed: removedList(removed)}, nil
}

// deleteIntegrator moves an integrator to its final stage and revokes its
// token. Its record stays, so that events still sent for it are refused
// with its name, and the name is not reused by accident.
func (s *Service) deleteIntegrator(ctx context.Context, cur resource.Resource) (map[string]int64, error) {
	var spec map[string]any
	if err := json.Unmarshal(cur.Spec, &spec); err != nil {
		return nil, err
	}
	removed := map[string]int64{}
	if spec["stage"] != StageDeleted {
		spec["stage"] = StageDeleted
		b, err := json.Marshal(spec)
		if err != nil {
			return nil, err
		}
		cur.Spec = b
		if _, _, err := s.deps.Resources.Put(ctx, cur); err != nil {
			return nil, err
		}
		removed[KindIntegrator] = 1
	}
	gone, err := s.deps.Resources.DeleteToken(ctx, cur.Tenant, cur.Name)
	if err != nil {
		return nil, err
	}
	if gone {
		removed["token"] = 1
	}
	return removed, nil
}

// checkUnused refuses to delete an endpoint that flows use, naming them.
func (s *Service) checkUnused(ctx context.Context, ep resource.Resource) error {
	flows, err := s.deps.Resources.List(ctx, KindFlow, ep.Tenant)
	if err != nil {
		return storeError(name(KindEndpoint, ep.Tenant, ep.Name), err)
	}
	var users []string
	for _, f := range flows {
		var fs FlowSpec
		if json.Unmarshal(f.Spec, &fs) == nil && (fs.Source == ep.Name || fs.Target == ep.Name) {
			users = append(users, f.Name)
		}
	}
	if len(users) == 0 {
		return nil
	}
	return apiError(connect.CodeFailedPrecondition, ReasonEndpointInUse, name(KindEndpoint, ep.Tenant, ep.Name),
		"delete those flows or point them at another endpoint first",
		fmt.Errorf("flows use it: %s", joinQuoted(users)))
}

func joinQuoted(names []string) string {
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += strconv.Quote(n)
	}
	return out
}

func removedList(m map[string]int64) []*controlplanev1.Removed {
	out := make([]*controlplanev1.Removed, 0, len(m))
	for what, n := range m {
		out = append(out, &controlplanev1.Removed{What: what, Count: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].What < out[j].What })
	return out
}

// RotateToken gives an integrator a new token.
func (h *resourceHandler) RotateToken(ctx context.Context, req *controlplanev1.RotateTokenRequest) (*controlplanev1.RotateTokenResponse, error) {
	s := h.s
	tenant, err := target(ctx, KindIntegrator, req.Tenant, req.Integrator)
	if err != nil {
		return nil, err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	res := name(KindIntegrator, tenant, req.Integrator)
	cur, err := s.deps.Resources.Get(ctx, KindIntegrator, tenant, req.Integrator)
	if err != nil {
		return nil, storeError(res, err)
	}
	if integratorStage(cur.Spec) == StageDeleted {
		return nil, apiError(connect.CodeFailedPrecondition, ReasonStageTransition, res, "create a new integrator",
			errors.New("the integrator is deleted: it gets no new token"))
	}
	token, err := s.newToken(ctx, tenant, req.Integrator)
	if err != nil {
		return nil, err
	}
	if err := s.publishTokens(ctx, tenant); err != nil {
		return nil, unpublished(err)
	}
	return &controlplanev1.RotateTokenResponse{Token: token}, nil
}

// RevokeToken takes an integrator's token away.
func (h *resourceHandler) RevokeToken(ctx context.Context, req *controlplanev1.RevokeTokenRequest) (*controlplanev1.RevokeTokenResponse, error) {
	s := h.s
	tenant, err := target(ctx, KindIntegrator, req.Tenant, req.Integrator)
	if err != nil {
		return nil, err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	res := name(KindIntegrator, tenant, req.Integrator)
	if _, err := s.deps.Resources.Get(ctx, KindIntegrator, tenant, req.Integrator); err != nil {
		return nil, storeError(res, err)
	}
	if _, err := s.deps.Resources.DeleteToken(ctx, tenant, req.Integrator); err != nil {
		return nil, storeError(res, err)
	}
	if err := s.publishTokens(ctx, tenant); err != nil {
		return nil, unpublished(err)
	}
	return &controlplanev1.RevokeTokenResponse{}, nil
}

// newToken makes and stores an integrator's token, replacing any other.
func (s *Service) newToken(ctx context.Context, tenant, integrator string) (string, error) {
	token, hash, err := auth.NewIntegratorToken()
	if err != nil {
		return "", apiError(connect.CodeInternal, ReasonInternal, name(KindIntegrator, tenant, integrator), "", err)
	}
	if err := s.deps.Resources.SetToken(ctx, tenant, integrator, hash); err != nil {
		return "", storeError(name(KindIntegrator, tenant, integrator), err)
	}
	return token, nil
}

// GetDefaultMapping returns an entity's default mapping.
func (h *resourceHandler) GetDefaultMapping(_ context.Context, req *controlplanev1.GetDefaultMappingRequest) (*controlplanev1.GetDefaultMappingResponse, error) {
	entities := mapping.DefaultEntities()
	spec, ok := mapping.Default(req.Entity)
	if !ok {
		return nil, apiError(connect.CodeNotFound, ReasonNotFound, "", "entities with a default mapping: "+joinQuoted(entities),
			fieldErr("entity", "%q has no default mapping: its flows map only the fields they name", req.Entity))
	}
	st, err := toStruct(spec)
	if err != nil {
		return nil, apiError(connect.CodeInternal, ReasonInternal, "", "", err)
	}
	return &controlplanev1.GetDefaultMappingResponse{Entity: req.Entity, Mapping: st, Entities: entities}, nil
}

// toStruct renders a Go value as a protobuf Struct through its JSON form.
func toStruct(v any) (*structpb.Struct, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return structpb.NewStruct(m)
}

// check decodes and validates one resource on its own.
func (s *Service) check(i int, r *controlplanev1.Resource) (item, error) {
	where := fmt.Sprintf("resource %d", i+1)
	if r.GetMetadata().GetName() != "" {
		where = fmt.Sprintf("resource %d (%s %s)", i+1, r.Kind, r.Metadata.Name)
	}
	fail := func(err error) (item, error) {
		return item{}, apiError(connect.CodeInvalidArgument, ReasonInvalid, where, "", err)
	}
	if r.ApiVersion != APIVersion {
		return fail(fieldErr("apiVersion", "%q: use %s", r.ApiVersion, APIVersion))
	}
	if _, ok := kindOrder[r.Kind]; !ok {
		return fail(fieldErr("kind", "%q: use Tenant, Integrator, Endpoint or Flow", r.Kind))
	}
	md := r.GetMetadata()
	if err := bus.ValidateToken("metadata.name", md.GetName()); err != nil {
		return fail(fieldErr("metadata.name", "%v", err))
	}
	tenant := md.GetTenant()
	if r.Kind == KindTenant {
		if tenant != "" && tenant != md.Name {
			return fail(fieldErr("metadata.tenant", "%q: a Tenant has no tenant; leave it out", tenant))
		}
		tenant = md.Name
	} else if err := bus.ValidateToken("metadata.tenant", tenant); err != nil {
		return fail(fieldErr("metadata.tenant", "%v", err))
	}
	spec, err := r.GetSpec().MarshalJSON()
	if err != nil || r.GetSpec() == nil {
		spec = []byte("{}")
	}
	if err := checkSize(spec); err != nil {
		return fail(err)
	}
	it := item{index: i, uid: md.GetUid(), res: resource.Resource{Kind: r.Kind, Tenant: tenant, Name: md.Name, Spec: spec}}
	if r.Kind != KindTenant {
		it.refs = append(it.refs, ref{KindTenant, tenant})
	}
	switch r.Kind {
	case KindTenant:
		var ts TenantSpec
		if err = decodeStrict(spec, &ts); err == nil {
			err = checkTenantLimits(&ts)
		}
		if err == nil {
			err = ts.check()
		}
	case KindIntegrator:
		var is IntegratorSpec
		if err = decodeStrict(spec, &is); err == nil {
			err = is.check()
		}
	case KindEndpoint:
		var es EndpointSpec
		if err = decodeStrict(spec, &es); err == nil {
			err = checkEndpointLimits(&es)
		}
		if err == nil {
			err = es.check()
		}
		if err == nil {
			err = s.checkSettings(&es)
		}
		it.credentials = es.Credentials
	case KindFlow:
		var fs FlowSpec
		if err = decodeStrict(spec, &fs); err == nil {
			err = checkFlowLimits(&fs)
		}
		if err == nil {
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
				return apiError(connect.CodeFailedPrecondition, ReasonReference, it.name(), "apply it first or in the same file",
					fmt.Errorf("refers to %s %q, which does not exist", r.kind, r.name))
			}
			if err != nil {
				return storeError(it.name(), err)
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
