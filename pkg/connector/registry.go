package connector

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Registry maps connector type names to their specs and, for targets, their factories. A
// service constructs one, registers its connectors while it wires up, and then reads it from
// any goroutine.
type Registry struct {
	mu      sync.RWMutex
	entries map[string]entry
}

type entry struct {
	spec    *checkedSpec
	factory TargetFactory
	// source and sourceEntities are set for a connector that can be polled
	// (RegisterPolling).
	source         SourceFactory
	sourceEntities SourceEntitiesFunc
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{entries: map[string]entry{}}
}

// RegisterTarget registers a target connector. A duplicate type name or an invalid spec is a
// programming error in the connector, reported so that the service fails at start-up.
func (r *Registry) RegisterTarget(spec Spec, f TargetFactory) error {
	if spec.Kind != KindTarget {
		return fmt.Errorf("registering connector %q: kind is %q, a target needs %q", spec.Type, spec.Kind, KindTarget)
	}
	if f == nil {
		return fmt.Errorf("registering connector %q: the target factory is nil", spec.Type)
	}
	return r.register(spec, f)
}

// RegisterSource registers a source connector that needs no code on this side yet, such as
// "nats", whose events are published straight to the bus: endpoints of that type are then
// validated like any other.
func (r *Registry) RegisterSource(spec Spec) error {
	if spec.Kind != KindSource {
		return fmt.Errorf("registering connector %q: kind is %q, a source needs %q", spec.Type, spec.Kind, KindSource)
	}
	return r.register(spec, nil)
}

// RegisterPolling makes the registered connector typ a source that is polled as well: a
// flow may read its endpoints on a schedule (interval or cron), through f. entities lists
// what an endpoint's settings can be polled for. A type registered twice, or not at all,
// is a programming error reported at start-up.
func (r *Registry) RegisterPolling(typ string, f SourceFactory, entities SourceEntitiesFunc) error {
	if f == nil || entities == nil {
		return fmt.Errorf("registering connector %q as a polled source: the factory and the entities function are both needed", typ)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[typ]
	switch {
	case !ok:
		return fmt.Errorf("registering connector %q as a polled source: register its spec first", typ)
	case e.source != nil:
		return fmt.Errorf("registering connector %q as a polled source: it is already", typ)
	}
	e.source, e.sourceEntities = f, entities
	r.entries[typ] = e
	return nil
}

// Polls reports whether endpoints of the connector type typ can be polled.
func (r *Registry) Polls(typ string) bool {
	e, err := r.lookup(typ)
	return err == nil && e.source != nil
}

// SourceEntities validates settings for the type typ and checks that an endpoint with them
// can be polled for entity. A refusal is a *SettingsError that says what can be polled.
func (r *Registry) SourceEntities(typ string, settings map[string]any, entity string) error {
	e, err := r.lookup(typ)
	if err != nil {
		return err
	}
	if e.source == nil {
		return &SettingsError{Path: "type", Reason: fmt.Sprintf("a %s endpoint is not polled: its system publishes its changes itself", typ)}
	}
	valid, err := e.spec.validate(settings)
	if err != nil {
		return err
	}
	names, err := e.sourceEntities(valid)
	if err != nil {
		return err
	}
	if slices.Contains(names, entity) || slices.Contains(names, AnyEntity) {
		return nil
	}
	served := "none"
	if len(names) > 0 {
		served = strings.Join(names, ", ")
	}
	return &SettingsError{Path: "entity", Reason: fmt.Sprintf("a %s endpoint with these settings cannot be polled for %q; it can be for %s", typ, entity, served)}
}

// PolledEntities validates settings for the type typ and lists the entities an endpoint
// with them can be polled for; none for a type that is not polled, or settings that poll
// nothing.
func (r *Registry) PolledEntities(typ string, settings map[string]any) ([]string, error) {
	e, err := r.lookup(typ)
	if err != nil || e.source == nil {
		return nil, err
	}
	valid, err := e.spec.validate(settings)
	if err != nil {
		return nil, err
	}
	return e.sourceEntities(valid)
}

// OpenSource validates settings for the polled type typ, checks what they reach against
// env's egress policy, and opens the source. When env has no budget, the source gets one
// of its own from the settings. ctx bounds the opening only.
func (r *Registry) OpenSource(ctx context.Context, typ string, settings map[string]any, env Env) (Source, error) {
	e, err := r.lookup(typ)
	if err != nil {
		return nil, err
	}
	if e.source == nil {
		return nil, &SettingsError{Path: "type", Reason: fmt.Sprintf("a %s endpoint is not polled: its system publishes its changes itself", typ)}
	}
	valid, env, err := e.prepare(ctx, settings, env)
	if err != nil {
		return nil, err
	}
	s, err := e.source(ctx, valid, env)
	if err != nil {
		return nil, fmt.Errorf("opening %s source: %w", typ, err)
	}
	if s == nil {
		return nil, fmt.Errorf("opening %s source: the factory returned neither a source nor an error", typ)
	}
	return s, nil
}

// prepare validates settings, checks what they reach against env's egress policy, and
// gives env a budget from them when it has none: what opening a target or a source starts
// with.
func (e entry) prepare(ctx context.Context, settings map[string]any, env Env) (map[string]any, Env, error) {
	valid, err := e.spec.validate(settings)
	if err != nil {
		return nil, env, err
	}
	if err := e.spec.checkEgress(ctx, valid, env); err != nil {
		return nil, env, err
	}
	if env.Budget == nil {
		env.Budget = NewBudget(BudgetFromSettings(valid))
	}
	return valid, env, nil
}

func (r *Registry) register(spec Spec, f TargetFactory) error {
	c, err := checkSpec(spec)
	if err != nil {
		return fmt.Errorf("registering connector %q: %w", spec.Type, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.entries[spec.Type]; ok {
		return fmt.Errorf("registering connector %q: the type is already registered", spec.Type)
	}
	r.entries[spec.Type] = entry{spec: c, factory: f}
	return nil
}

// Spec returns the spec registered under typ. The copy is the caller's to change.
func (r *Registry) Spec(typ string) (Spec, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.entries[typ]
	if !ok {
		return Spec{}, false
	}
	return cloneSpec(e.spec.spec), true
}

// Specs returns every registered spec, sorted by type, for docs and schema generation.
func (r *Registry) Specs() []Spec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	specs := make([]Spec, 0, len(r.entries))
	for _, e := range r.entries {
		specs = append(specs, cloneSpec(e.spec.spec))
	}
	slices.SortFunc(specs, func(a, b Spec) int { return strings.Compare(a.Type, b.Type) })
	return specs
}

// ValidateSettings checks settings against the spec of typ: required fields present, no
// unknown fields, types right, enums and patterns respected. Every problem is a *SettingsError
// naming its path (for example `settings.table: required`), and all of them are returned
// joined. Secret values are never echoed.
//
// It returns a new map with defaults filled in and values normalised, so a factory can use
// plain type assertions: string -> string, int -> int64, bool -> bool, duration ->
// time.Duration (from a string such as "30s"), map -> map[string]any.
func (r *Registry) ValidateSettings(typ string, settings map[string]any) (map[string]any, error) {
	e, err := r.lookup(typ)
	if err != nil {
		return nil, err
	}
	return e.spec.validate(settings)
}

// CheckEgress validates settings for the connector type typ and checks every destination
// they reach against env's egress policy. A refusal is a *SettingsError naming the setting,
// what it points at and the rule, and, where a rule could allow it, the setting that would.
// ctx bounds the name lookups.
func (r *Registry) CheckEgress(ctx context.Context, typ string, settings map[string]any, env Env) error {
	e, err := r.lookup(typ)
	if err != nil {
		return err
	}
	valid, err := e.spec.validate(settings)
	if err != nil {
		return err
	}
	return e.spec.checkEgress(ctx, valid, env)
}

// Destinations validates settings for the connector type typ and lists what they reach (the
// spec's Reaches; none for a connector without it).
func (r *Registry) Destinations(typ string, settings map[string]any) ([]Destination, error) {
	e, err := r.lookup(typ)
	if err != nil {
		return nil, err
	}
	valid, err := e.spec.validate(settings)
	if err != nil {
		return nil, err
	}
	if e.spec.spec.Reaches == nil {
		return nil, nil
	}
	return e.spec.spec.Reaches(valid)
}

func (c *checkedSpec) checkEgress(ctx context.Context, valid map[string]any, env Env) error {
	if c.spec.Reaches == nil {
		return nil
	}
	if env.Egress == nil {
		return fmt.Errorf("checking where a %s endpoint reaches: no egress policy was given", c.spec.Type)
	}
	dests, err := c.spec.Reaches(valid)
	if err != nil {
		return err
	}
	for _, d := range dests {
		var err error
		switch {
		case d.Path != "":
			err = env.Egress.CheckPath(env.Tenant, d.Path)
		case d.Database != "":
			err = env.Egress.CheckDatabase(ctx, env.Tenant, d.Host, d.Port, d.Database)
		default:
			err = env.Egress.CheckAddr(ctx, env.Tenant, d.Host, d.Port)
		}
		if err != nil {
			return &SettingsError{Path: d.Setting, Reason: err.Error()}
		}
	}
	return nil
}

// Capabilities validates settings for the target type typ and returns what an endpoint with
// them can do with entity. A target that does not serve the entity is a *SettingsError
// that names the entities it does serve.
func (r *Registry) Capabilities(typ string, settings map[string]any, entity string) (Capabilities, error) {
	e, err := r.lookup(typ)
	if err != nil {
		return Capabilities{}, err
	}
	if e.spec.spec.Entities == nil {
		return Capabilities{}, &SettingsError{Path: "type", Reason: fmt.Sprintf("%q is a %s connector and cannot be a flow's target", typ, e.spec.spec.Kind)}
	}
	valid, err := e.spec.validate(settings)
	if err != nil {
		return Capabilities{}, err
	}
	all, err := e.spec.spec.Entities(valid)
	if err != nil {
		return Capabilities{}, err
	}
	names := make([]string, 0, len(all))
	for _, c := range all {
		if c.Entity == entity || c.Entity == AnyEntity {
			c.Entity = entity
			c.FindBy = slices.Clone(c.FindBy)
			return c, nil
		}
		names = append(names, c.Entity)
	}
	served := "none"
	if len(names) > 0 {
		served = strings.Join(names, ", ")
	}
	return Capabilities{}, &SettingsError{Path: "entity", Reason: fmt.Sprintf("a %s endpoint with these settings does not serve %q; it serves %s", typ, entity, served)}
}

// OpenTarget validates settings for the target type typ, checks what they reach against
// env's egress policy, and opens the target with its factory. When env has no budget, the
// target gets one of its own from the settings (max_requests_per_second, max_concurrency);
// a caller that opens an endpoint for several flows passes theirs. ctx bounds the opening
// only.
func (r *Registry) OpenTarget(ctx context.Context, typ string, settings map[string]any, env Env) (Target, error) {
	e, err := r.lookup(typ)
	if err != nil {
		return nil, err
	}
	if e.factory == nil {
		return nil, &SettingsError{Path: "type", Reason: fmt.Sprintf("%q is a %s connector and cannot be a flow's target", typ, e.spec.spec.Kind)}
	}
	valid, env, err := e.prepare(ctx, settings, env)
	if err != nil {
		return nil, err
	}
	t, err := e.factory(ctx, valid, env)
	if err != nil {
		return nil, fmt.Errorf("opening %s target: %w", typ, err)
	}
	if t == nil {
		return nil, fmt.Errorf("opening %s target: the factory returned neither a target nor an error", typ)
	}
	return t, nil
}

func (r *Registry) lookup(typ string) (entry, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.entries[typ]
	if !ok {
		return entry{}, &SettingsError{Path: "type", Reason: fmt.Sprintf("%q is not a registered connector type; use one of %s", typ, r.typesLocked())}
	}
	return e, nil
}

func (r *Registry) typesLocked() string {
	if len(r.entries) == 0 {
		return "(none registered)"
	}
	return strings.Join(slices.Sorted(maps.Keys(r.entries)), ", ")
}
