// Package controlplane is the control plane service: it stores the resources
// a platform team applies (tenants, integrators, endpoints, flows), validates
// them when they are applied — a bad mapping or bad endpoint settings are
// refused then, not at run time — and publishes compiled flow configs to the
// key-value bucket the data plane watches.
package controlplane

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/apiserver"
	"github.com/syncline/syncline/pkg/bus"
	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/entity"
	"github.com/syncline/syncline/pkg/erase"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/flowstate"
	"github.com/syncline/syncline/pkg/mapping"
	"github.com/syncline/syncline/pkg/poll"
	"github.com/syncline/syncline/pkg/recipe"
	"github.com/syncline/syncline/pkg/secret"
	"github.com/syncline/syncline/pkg/stage"
	"github.com/syncline/syncline/services/controlplane/resource"
)

// Deps are the control plane's dependencies.
type Deps struct {
	JetStream  jetstream.JetStream
	Resources  resource.Store
	Connectors *sdk.Registry
	Bus        bus.Config
	Logger     *slog.Logger
	// Secrets seals endpoint credentials; nil refuses credentials, saying
	// that a master key is needed.
	Secrets *secret.Box
	// Egress is the platform's egress policy, which every endpoint is
	// checked against when it is applied, with its tenant's own rules
	// (spec.egress) added. The connector checks again when it connects.
	Egress *sdk.Egress
}

// Service is the control plane.
type Service struct {
	deps Deps
	log  *slog.Logger
	kv   jetstream.KeyValue
	// polls are the polled sources' states, which flows' status shows.
	polls *poll.Store

	// applyMu serialises applies: validation reads the store and writing
	// follows, which must not interleave with another apply.
	applyMu sync.Mutex
}

// New returns a control plane; Start runs it.
func New(deps Deps) (*Service, error) {
	if deps.JetStream == nil || deps.Resources == nil || deps.Connectors == nil || deps.Egress == nil {
		return nil, errors.New("controlplane: JetStream, Resources, Connectors and Egress are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{deps: deps, log: deps.Logger, polls: poll.NewStore(deps.JetStream, deps.Bus.Replicas)}, nil
}

// Start opens the flow-config bucket and brings it in step with the store,
// so the data plane runs what the store says even after a crash between a
// store write and its publish.
func (s *Service) Start(ctx context.Context) error {
	kv, err := flowconfig.OpenBucket(ctx, s.deps.JetStream, s.deps.Bus.Replicas)
	if err != nil {
		return err
	}
	s.kv = kv
	tenants, err := s.deps.Resources.List(ctx, KindTenant, "")
	if err != nil {
		return fmt.Errorf("listing tenants: %w", err)
	}
	// One tenant that does not compile (stored before a rule it now
	// breaks) must not keep every other tenant's data plane stale: it is
	// logged, its tokens are published all the same, and the next apply
	// to it says what to fix.
	for _, t := range tenants {
		if err := s.publishTokens(ctx, t.Name); err != nil {
			return err
		}
		if err := s.publishTenant(ctx, t.Name); err != nil {
			s.log.Error("tenant not published to the data plane; apply it again to see why", "tenant", t.Name, "error", err)
		}
	}
	return nil
}

// Stop has nothing to release: requests in flight end with the HTTP server.
func (s *Service) Stop(context.Context) error { return nil }

// Mount adds the resource API to mux, with its request limit. mux must
// authenticate every request (auth.Authenticator.Handler).
func (s *Service) Mount(mux *http.ServeMux) {
	// A request is refused past maxRequestSize before it is decoded; the
	// limits of an apply are checked on what is decoded.
	l := apiserver.Limit{API: "the control plane API", MaxBytes: maxRequestSize,
		Hint: "apply the resources in several calls, e.g. one file at a time"}
	path, h := newResourceHandler(s, l.Option())
	mux.Handle(path, l.Handler(h))
}

// publishTenant writes the tenant's marker, every compiled flow of the
// tenant and its integrators' token hashes to the bucket, and deletes what
// no longer exists. Unchanged entries are not rewritten, so watchers see
// only real changes. A tenant that is gone has everything removed.
func (s *Service) publishTenant(ctx context.Context, tenant string) error {
	want := map[string]bool{}
	t, err := s.deps.Resources.Get(ctx, KindTenant, tenant, tenant)
	switch {
	case err == nil:
		if err := s.publishTenantEntries(ctx, t, want); err != nil {
			return err
		}
	case !errors.Is(err, resource.ErrNotFound):
		return fmt.Errorf("reading tenant %s: %w", tenant, err)
	}
	return s.removeTenantKeys(ctx, keep(want), flowconfig.TenantKey(tenant), "flow."+tenant+".*", tokenKeys(tenant))
}

func tokenKeys(tenant string) string { return "token." + tenant + ".*" }

func keep(want map[string]bool) func(string) bool { return func(k string) bool { return want[k] } }

// publishTokens brings only a tenant's token hashes in the bucket in step:
// what a rotate or revoke changes, without compiling the tenant's flows.
func (s *Service) publishTokens(ctx context.Context, tenant string) error {
	want := map[string]bool{}
	if err := s.putTokens(ctx, tenant, want); err != nil {
		return err
	}
	return s.removeTenantKeys(ctx, keep(want), tokenKeys(tenant))
}

// removeTenantKeys deletes the bucket's keys matching filters but those kept.
func (s *Service) removeTenantKeys(ctx context.Context, kept func(string) bool, filters ...string) error {
	keys, err := s.kv.ListKeysFiltered(ctx, filters...)
	if err != nil {
		return fmt.Errorf("listing %v in the flow-config bucket: %w", filters, err)
	}
	for k := range keys.Keys() {
		if kept(k) {
			continue
		}
		if err := s.kv.Delete(ctx, k); err != nil {
			return fmt.Errorf("removing %s from the flow-config bucket: %w", k, err)
		}
	}
	return nil
}

func (s *Service) publishTenantEntries(ctx context.Context, t resource.Resource, want map[string]bool) error {
	tenant := t.Name
	put := func(key string, data []byte) error {
		want[key] = true
		return s.putIfChanged(ctx, key, data)
	}
	entry, err := tenantEntry(t)
	if err != nil {
		return err
	}
	if err := put(flowconfig.TenantKey(tenant), entry); err != nil {
		return err
	}
	flows, err := s.compileTenant(ctx, s.deps.Resources, tenant)
	if err != nil {
		return err
	}
	for _, f := range flows {
		data, err := flowconfig.Encode(f)
		if err != nil {
			return err
		}
		if err := put(f.Key(), data); err != nil {
			return err
		}
	}
	return s.putTokens(ctx, tenant, want)
}

// putTokens writes a tenant's token hashes to the bucket and adds their keys to want.
func (s *Service) putTokens(ctx context.Context, tenant string, want map[string]bool) error {
	tokens, err := s.deps.Resources.Tokens(ctx, tenant)
	if err != nil {
		return err
	}
	for integrator, hash := range tokens {
		data, err := json.Marshal(flowconfig.Token{Tenant: tenant, Integrator: integrator})
		if err != nil {
			return err
		}
		key := flowconfig.TokenKey(tenant, hash)
		want[key] = true
		if err := s.putIfChanged(ctx, key, data); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) putIfChanged(ctx context.Context, key string, data []byte) error {
	cur, err := s.kv.Get(ctx, key)
	if err == nil && bytes.Equal(cur.Value(), data) {
		return nil
	}
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("reading flow config %s: %w", key, err)
	}
	if _, err := s.kv.Put(ctx, key, data); err != nil {
		return fmt.Errorf("publishing flow config %s: %w", key, err)
	}
	return nil
}

// eraseFrom are the services that own a tenant's data and must erase it
// before the tenant is deleted: dedup (the ledger) and eventlog (the API log
// and dead letters).
var eraseFrom = []string{stage.Dedup, stage.Eventlog}

// deleteTenant erases a tenant everywhere, in an order that is safe to
// repeat after any failure: first the data plane stops taking its events
// (its flows, marker and tokens leave the bucket), then its messages leave
// every stream, then the services that own its data erase it (ledger, API
// log), and last its resources and tokens go. Until the last step the
// tenant can still be listed, and deleting it again finishes the job.
func (s *Service) deleteTenant(ctx context.Context, tenant string) (map[string]int64, error) {
	res := name(KindTenant, tenant, tenant)
	removed := map[string]int64{}
	none := func(string) bool { return false }
	if err := s.removeTenantKeys(ctx, none, flowconfig.TenantKey(tenant), "flow."+tenant+".*", tokenKeys(tenant)); err != nil {
		return nil, apiError(connect.CodeUnavailable, ReasonUnavailable, res, "retry the delete", err)
	}
	streams, err := bus.PurgeTenant(ctx, s.deps.JetStream, tenant)
	if err != nil {
		return nil, apiError(connect.CodeUnavailable, ReasonUnavailable, res, "retry the delete", err)
	}
	if err := flowstate.Forget(ctx, s.deps.JetStream, tenant); err != nil {
		return nil, apiError(connect.CodeUnavailable, ReasonUnavailable, res, "retry the delete", err)
	}
	if err := poll.Forget(ctx, s.deps.JetStream, tenant); err != nil {
		return nil, apiError(connect.CodeUnavailable, ReasonUnavailable, res, "retry the delete", err)
	}
	for _, n := range streams {
		removed["messages"] += n
	}
	// Dead letters are messages of the dead-letter stream; count them apart.
	removed["dead letters"] = streams[bus.StreamDeadLetter]
	removed["messages"] -= streams[bus.StreamDeadLetter]
	erased, err := erase.Tenant(ctx, s.deps.JetStream.Conn(), tenant, eraseFrom)
	if err != nil {
		return nil, apiError(connect.CodeUnavailable, ReasonUnavailable, res, "", err)
	}
	maps.Copy(removed, erased)
	gone, err := s.deps.Resources.DeleteTenant(ctx, tenant)
	if err != nil {
		return nil, storeError(res, err)
	}
	maps.Copy(removed, gone)
	s.log.Info("tenant deleted", "tenant", tenant, "removed", removed)
	return removed, nil
}

// tenantEntry is a tenant's own entry in the bucket: its alert webhook,
// with the secret as the store keeps it, sealed. A tenant without alerts is
// "{}".
func tenantEntry(t resource.Resource) ([]byte, error) {
	var spec TenantSpec
	if err := decodeStrict(t.Spec, &spec); err != nil {
		return nil, fmt.Errorf("decoding stored tenant %s: %w", t.Name, err)
	}
	entry := flowconfig.Tenant{RetentionDays: spec.RetentionDays, Egress: spec.Egress}
	if a := spec.Alerts; a != nil {
		interval, err := a.interval()
		if err != nil {
			return nil, fmt.Errorf("stored tenant %s: %w", t.Name, err)
		}
		entry.Alerts = &flowconfig.Alerts{Webhook: a.Webhook, Secret: a.SealedSecret, MinInterval: interval}
	}
	b, err := json.Marshal(entry)
	if err != nil {
		return nil, fmt.Errorf("encoding tenant %s: %w", t.Name, err)
	}
	return b, nil
}

// reader is what compiling reads of the store: the store itself, or the
// store as an apply will leave it (afterApply).
type reader interface {
	Get(ctx context.Context, kind, tenant, name string) (resource.Resource, error)
	List(ctx context.Context, kind, tenant string) ([]resource.Resource, error)
}

// afterApply is the store as an apply will leave it: the apply's changed
// resources over the stored ones.
type afterApply struct {
	store   reader
	changes map[string]resource.Resource // by kind/tenant/name
}

func (p afterApply) Get(ctx context.Context, kind, tenant, name string) (resource.Resource, error) {
	if r, ok := p.changes[kind+"/"+tenant+"/"+name]; ok {
		return r, nil
	}
	return p.store.Get(ctx, kind, tenant, name)
}

// List keeps the store's order: by tenant and name.
func (p afterApply) List(ctx context.Context, kind, tenant string) ([]resource.Resource, error) {
	list, err := p.store.List(ctx, kind, tenant)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, r := range list {
		key := r.Kind + "/" + r.Tenant + "/" + r.Name
		if c, ok := p.changes[key]; ok {
			list[i] = c
			seen[key] = true
		}
	}
	for key, r := range p.changes {
		if r.Kind == kind && (tenant == "" || r.Tenant == tenant) && !seen[key] {
			list = append(list, r)
		}
	}
	slices.SortFunc(list, func(a, b resource.Resource) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Name, b.Name))
	})
	return list, nil
}

// checkPublishable compiles every tenant an apply changes as the apply will
// leave it, and refuses the apply if a tenant would not compile or a flow
// would not fit in the bucket: what publishing would fail on after the
// store had taken it.
func (s *Service) checkPublishable(ctx context.Context, p afterApply) error {
	tenants := map[string]bool{}
	for _, r := range p.changes {
		tenants[r.Tenant] = true
	}
	for _, tenant := range slices.Sorted(maps.Keys(tenants)) {
		t, err := p.Get(ctx, KindTenant, tenant, tenant)
		if err != nil {
			return storeError(name(KindTenant, tenant, tenant), err)
		}
		if _, err := tenantEntry(t); err != nil {
			return apiError(connect.CodeInvalidArgument, ReasonInvalid, name(KindTenant, tenant, tenant), "", err)
		}
		flows, err := s.compileTenant(ctx, p, tenant)
		if err != nil {
			return apiError(connect.CodeFailedPrecondition, ReasonInvalid, name(KindTenant, tenant, tenant),
				"fix that resource in this apply, or delete it", err)
		}
		for _, f := range flows {
			data, err := flowconfig.Encode(f)
			if err != nil {
				return apiError(connect.CodeInternal, ReasonInternal, name(KindFlow, tenant, f.Name), "", err)
			}
			if err := checkCompiledSize(f, data); err != nil {
				return apiError(connect.CodeInvalidArgument, ReasonInvalid, name(KindFlow, tenant, f.Name), "", err)
			}
		}
	}
	return nil
}

// compileTenant resolves every flow of a tenant against its endpoints and
// integrators, as from has them. Each flow carries its integrator's stage,
// which the data plane follows: active runs, inactive holds, deleted
// refuses.
func (s *Service) compileTenant(ctx context.Context, from reader, tenant string) ([]*flowconfig.Flow, error) {
	flows, err := from.List(ctx, KindFlow, tenant)
	if err != nil {
		return nil, fmt.Errorf("listing flows of tenant %s: %w", tenant, err)
	}
	out := make([]*flowconfig.Flow, 0, len(flows))
	for _, r := range flows {
		var spec FlowSpec
		if err := decodeStrict(r.Spec, &spec); err != nil {
			return nil, fmt.Errorf("decoding stored flow %s/%s: %w", tenant, r.Name, err)
		}
		if err := spec.check(); err != nil {
			return nil, fmt.Errorf("stored flow %s/%s: %w", tenant, r.Name, err)
		}
		integ, err := from.Get(ctx, KindIntegrator, tenant, spec.Integrator)
		if err != nil {
			return nil, fmt.Errorf("flow %s/%s: %w", tenant, r.Name, err)
		}
		var is IntegratorSpec
		if err := decodeStrict(integ.Spec, &is); err != nil {
			return nil, fmt.Errorf("decoding stored integrator %s/%s: %w", tenant, integ.Name, err)
		}
		if err := is.check(); err != nil {
			return nil, fmt.Errorf("stored integrator %s/%s: %w", tenant, integ.Name, err)
		}
		src, srcSettings, err := s.endpoint(ctx, from, tenant, spec.Source)
		if err != nil {
			return nil, fmt.Errorf("flow %s/%s: %w", tenant, r.Name, err)
		}
		if err := s.checkPolled(spec, src, srcSettings); err != nil {
			return nil, fmt.Errorf("flow %s/%s: %w", tenant, r.Name, err)
		}
		dst, dstSettings, err := s.endpoint(ctx, from, tenant, spec.Target)
		if err != nil {
			return nil, fmt.Errorf("flow %s/%s: %w", tenant, r.Name, err)
		}
		// What the target can do with the flow's entity, checked against what the flow
		// needs of it, and compiled into the flow for the data plane.
		caps, err := s.deps.Connectors.Capabilities(dst.Type, dstSettings, spec.Entity)
		if err != nil {
			return nil, fmt.Errorf("flow %s/%s: target endpoint %s: %w", tenant, r.Name, dst.Name, err)
		}
		for _, e := range recipe.Related(spec.Entity) {
			// A target that serves none of an entity lacks what needs it, which the
			// check names.
			if c, err := s.deps.Connectors.Capabilities(dst.Type, dstSettings, e); err == nil {
				dst.Related = append(dst.Related, c)
			}
		}
		var doc *flowconfig.Document
		if spec.Document != nil && !caps.Canonical {
			return nil, fmt.Errorf("flow %s/%s: spec.document: target endpoint %s (%s) takes %s records as the mapping makes them, not in their canonical shape, so no document recipe runs for it; leave spec.document out", tenant, r.Name, dst.Name, dst.Type, spec.Entity)
		}
		if d := spec.Document; d != nil {
			doc = &flowconfig.Document{State: d.State, DefaultCustomer: strings.ToLower(d.DefaultCustomer), Types: d.Types}
		}
		effective := spec.effectiveMapping(caps.Canonical)
		if _, err := mapping.Compile(effective); err != nil {
			what := "its flat default mapping, as target endpoint %s (%s) takes %s records as mapped"
			if caps.Canonical {
				what = "its canonical default mapping, as target endpoint %s (%s) reads %s records in their canonical shape"
			}
			return nil, fmt.Errorf("flow %s/%s: spec.mapping over "+what+": %w", tenant, r.Name, dst.Name, dst.Type, spec.Entity, err)
		}
		compiled := &flowconfig.Flow{Name: r.Name, Entity: spec.Entity, Target: dst, Duplicates: spec.Duplicates, WriteModes: spec.WriteModes, Document: doc}
		if err := recipe.Check(recipe.For(compiled, caps, dst.Related, nil)); err != nil {
			return nil, fmt.Errorf("flow %s/%s: %w", tenant, r.Name, err)
		}
		dst.Caps = &caps
		out = append(out, &flowconfig.Flow{
			Tenant:     tenant,
			Name:       r.Name,
			Integrator: spec.Integrator,
			Generation: r.Generation,
			Entity:     spec.Entity,
			Source:     src,
			Target:     dst,
			Mapping:    effective,
			Duplicates: spec.Duplicates,
			Stage:      is.Stage,
			KeyField:   spec.KeyField,
			Keyless:    spec.Keyless,
			WriteModes: spec.WriteModes,
			// The mapper checks each mapped record against the entity's
			// canonical shape when the target reads that shape.
			Canonical: caps.Canonical && entity.Has(spec.Entity),
			Document:  doc,
			Schedule:  spec.Schedule,
		})
	}
	return out, nil
}

// checkPolled checks a flow's schedule against its source endpoint: a polling schedule
// needs a connector that is polled and can be for the flow's entity.
func (s *Service) checkPolled(spec FlowSpec, src flowconfig.Endpoint, settings map[string]any) error {
	if spec.Schedule == nil || spec.Schedule.Mode == poll.ModeRealtime {
		return nil
	}
	if !s.deps.Connectors.Polls(src.Type) {
		return fieldErr("spec.schedule.mode", "%q needs a source that is polled, and source endpoint %s is a %s endpoint, whose system publishes its changes itself: use realtime, or a rest or sql endpoint", spec.Schedule.Mode, src.Name, src.Type)
	}
	if err := s.deps.Connectors.SourceEntities(src.Type, settings, spec.Entity); err != nil {
		return fmt.Errorf("source endpoint %s: %w", src.Name, err)
	}
	return nil
}

// It also returns the endpoint's checked settings with a placeholder for each credential,
// which is what the connector's spec reads to say what the endpoint serves.
func (s *Service) endpoint(ctx context.Context, from reader, tenant, name string) (flowconfig.Endpoint, map[string]any, error) {
	r, err := from.Get(ctx, KindEndpoint, tenant, name)
	if err != nil {
		return flowconfig.Endpoint{}, nil, err
	}
	var spec EndpointSpec
	if err := decodeStrict(r.Spec, &spec); err != nil {
		return flowconfig.Endpoint{}, nil, fmt.Errorf("decoding stored endpoint %s/%s: %w", tenant, name, err)
	}
	// Credentials are checked with their names only; the connector opens
	// their values when it connects.
	check := maps.Clone(spec.Settings)
	if check == nil {
		check = map[string]any{}
	}
	for k := range spec.Credentials {
		check[k] = Secret
	}
	checked, err := s.deps.Connectors.ValidateSettings(spec.Type, check)
	if err != nil {
		return flowconfig.Endpoint{}, nil, fmt.Errorf("endpoint %s/%s: %w", tenant, name, err)
	}
	// The data plane validates the settings again when it opens the target,
	// from their JSON in the bucket: a duration goes as its text.
	settings := sdk.Portable(checked)
	for k := range spec.Credentials {
		delete(settings, k)
	}
	cs, _ := s.deps.Connectors.Spec(spec.Type)
	return flowconfig.Endpoint{Name: name, Type: spec.Type, Settings: settings, KeyIsID: cs.KeyIsID, Credentials: spec.SealedCredentials}, checked, nil
}
