// Package controlplane is the control plane service: it stores the resources
// a platform team applies (tenants, integrators, endpoints, flows), validates
// them when they are applied — a bad mapping or bad endpoint settings are
// refused then, not at run time — and publishes compiled flow configs to the
// key-value bucket the data plane watches.
package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/bus"
	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/services/controlplane/resource"
)

// Deps are the control plane's dependencies.
type Deps struct {
	JetStream  jetstream.JetStream
	Resources  resource.Store
	Connectors *sdk.Registry
	Bus        bus.Config
	Logger     *slog.Logger
	// HandlerOptions wrap the API (authentication, for one).
	HandlerOptions []connect.HandlerOption
}

// Service is the control plane.
type Service struct {
	deps Deps
	log  *slog.Logger
	kv   jetstream.KeyValue

	// applyMu serialises applies: validation reads the store and writing
	// follows, which must not interleave with another apply.
	applyMu sync.Mutex
}

// New returns a control plane; Start runs it.
func New(deps Deps) (*Service, error) {
	if deps.JetStream == nil || deps.Resources == nil || deps.Connectors == nil {
		return nil, errors.New("controlplane: JetStream, Resources and Connectors are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{deps: deps, log: deps.Logger.With("service", "controlplane")}, nil
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
	for _, t := range tenants {
		if err := s.publishTenant(ctx, t.Name); err != nil {
			return err
		}
	}
	return nil
}

// Stop has nothing to release: requests in flight end with the HTTP server.
func (s *Service) Stop(context.Context) error { return nil }

// Mount adds the resource API to mux.
func (s *Service) Mount(mux *http.ServeMux) {
	mux.Handle(newResourceHandler(s, s.deps.HandlerOptions...))
}

// publishTenant writes the tenant's marker and every compiled flow of the
// tenant to the bucket, and deletes flows that no longer exist. Unchanged
// entries are not rewritten, so watchers see only real changes.
func (s *Service) publishTenant(ctx context.Context, tenant string) error {
	if err := s.putIfChanged(ctx, flowconfig.TenantKey(tenant), []byte(`{}`)); err != nil {
		return err
	}
	flows, err := s.compileTenant(ctx, tenant)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, f := range flows {
		data, err := flowconfig.Encode(f)
		if err != nil {
			return err
		}
		want[f.Key()] = true
		if err := s.putIfChanged(ctx, f.Key(), data); err != nil {
			return err
		}
	}
	keys, err := s.kv.ListKeysFiltered(ctx, "flow."+tenant+".*")
	if err != nil {
		return fmt.Errorf("listing flow configs of tenant %s: %w", tenant, err)
	}
	for k := range keys.Keys() {
		if !want[k] {
			if err := s.kv.Delete(ctx, k); err != nil {
				return fmt.Errorf("removing flow config %s: %w", k, err)
			}
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

// compileTenant resolves every flow of a tenant against its endpoints and
// integrators. Flows of an integrator that is not active are left out, so the
// data plane stops mapping them.
func (s *Service) compileTenant(ctx context.Context, tenant string) ([]*flowconfig.Flow, error) {
	flows, err := s.deps.Resources.List(ctx, KindFlow, tenant)
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
		integ, err := s.deps.Resources.Get(ctx, KindIntegrator, tenant, spec.Integrator)
		if err != nil {
			return nil, fmt.Errorf("flow %s/%s: %w", tenant, r.Name, err)
		}
		var is IntegratorSpec
		if err := decodeStrict(integ.Spec, &is); err != nil {
			return nil, fmt.Errorf("decoding stored integrator %s/%s: %w", tenant, integ.Name, err)
		}
		if is.Stage != "" && is.Stage != "active" {
			continue
		}
		src, err := s.endpoint(ctx, tenant, spec.Source)
		if err != nil {
			return nil, fmt.Errorf("flow %s/%s: %w", tenant, r.Name, err)
		}
		dst, err := s.endpoint(ctx, tenant, spec.Target)
		if err != nil {
			return nil, fmt.Errorf("flow %s/%s: %w", tenant, r.Name, err)
		}
		out = append(out, &flowconfig.Flow{
			Tenant:     tenant,
			Name:       r.Name,
			Integrator: spec.Integrator,
			Generation: r.Generation,
			Entity:     spec.Entity,
			Source:     src,
			Target:     dst,
			Mapping:    spec.Mapping,
			Duplicates: spec.Duplicates,
		})
	}
	return out, nil
}

func (s *Service) endpoint(ctx context.Context, tenant, name string) (flowconfig.Endpoint, error) {
	r, err := s.deps.Resources.Get(ctx, KindEndpoint, tenant, name)
	if err != nil {
		return flowconfig.Endpoint{}, err
	}
	var spec EndpointSpec
	if err := decodeStrict(r.Spec, &spec); err != nil {
		return flowconfig.Endpoint{}, fmt.Errorf("decoding stored endpoint %s/%s: %w", tenant, name, err)
	}
	settings, err := s.deps.Connectors.ValidateSettings(spec.Type, spec.Settings)
	if err != nil {
		return flowconfig.Endpoint{}, fmt.Errorf("endpoint %s/%s: %w", tenant, name, err)
	}
	cs, _ := s.deps.Connectors.Spec(spec.Type)
	return flowconfig.Endpoint{Name: name, Type: spec.Type, Settings: settings, KeyIsID: cs.KeyIsID}, nil
}
