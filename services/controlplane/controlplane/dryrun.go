package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/entity"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/mapping"
	"github.com/syncline/syncline/pkg/recipe"
	"github.com/syncline/syncline/pkg/stage"
)

// dryRunTimeout bounds a test of an endpoint or a flow: connecting, the
// check or the lookup. A target that takes longer is reported as failing.
const dryRunTimeout = 15 * time.Second

// The control plane opens a target for a test itself, as the connector would:
// with the endpoint's settings and opened credentials, through the same
// egress policy (the platform's and the tenant's own). It reaches the target
// only for these calls, which a person makes, and writes nothing to it.

// TestEndpoint checks that a target endpoint answers and accepts its
// credentials.
func (h *resourceHandler) TestEndpoint(ctx context.Context, req *controlplanev1.TestEndpointRequest) (*controlplanev1.TestEndpointResponse, error) {
	tenant, err := target(ctx, KindEndpoint, req.Tenant, req.Name)
	if err != nil {
		return nil, err
	}
	res := name(KindEndpoint, tenant, req.Name)
	ep, checked, err := h.s.endpoint(ctx, h.s.deps.Resources, tenant, req.Name)
	if err != nil {
		return nil, h.s.endpointError(res, err)
	}
	spec, _ := h.s.deps.Connectors.Spec(ep.Type)
	// Settings that poll nothing (a sql endpoint without poll) make a target only.
	pollable, _ := h.s.deps.Connectors.PolledEntities(ep.Type, checked)
	polled := len(pollable) > 0
	if spec.Kind != sdk.KindTarget && !polled {
		return nil, apiError(connect.CodeFailedPrecondition, ReasonInvalid, res, "",
			fmt.Errorf("a %s endpoint is a source that publishes its own events: there is nothing to connect to; publish a change with `syncline publish` and read `syncline logs`", ep.Type))
	}
	out := &controlplanev1.TestEndpointResponse{Entities: describeEntities(spec, checked)}
	ctx, cancel := context.WithTimeout(ctx, dryRunTimeout)
	defer cancel()
	start := time.Now()
	// A polled endpoint is checked as the source it is; one that is a target too (with
	// settings a target takes) is checked as that as well.
	var err2 error
	var asSource bool
	if polled {
		var src sdk.Source
		src, err2 = h.s.openSource(ctx, tenant, ep)
		if err2 == nil {
			err2 = src.Check(ctx)
			if cerr := src.Close(); cerr != nil {
				h.s.log.Warn("closing a tested source", "tenant", tenant, "endpoint", ep.Name, "error", cerr)
			}
			asSource = err2 == nil
		}
	}
	if err2 == nil && spec.Kind == sdk.KindTarget {
		t, err := h.s.openTarget(ctx, tenant, ep)
		var settingsErr *sdk.SettingsError
		switch {
		case err == nil:
			err2 = t.Check(ctx)
			if cerr := t.Close(); cerr != nil {
				h.s.log.Warn("closing a tested target", "tenant", tenant, "endpoint", ep.Name, "error", cerr)
			}
		case asSource && errors.As(err, &settingsErr):
			// A source that cannot be a target (a MariaDB table): its source check is
			// the test.
		default:
			err2 = err
		}
	}
	out.DurationMs = time.Since(start).Milliseconds()
	if err2 != nil {
		var ce *connect.Error
		if errors.As(err2, &ce) {
			return nil, ce
		}
		out.Message = err2.Error()
		return out, nil
	}
	out.Ok = true
	out.Message = fmt.Sprintf("the %s endpoint answered and accepted its credentials", ep.Type)
	return out, nil
}

// TestFlow maps a sample record as the flow would and plans what its target
// would do with it.
func (h *resourceHandler) TestFlow(ctx context.Context, req *controlplanev1.TestFlowRequest) (*controlplanev1.TestFlowResponse, error) {
	tenant, err := target(ctx, KindFlow, req.Tenant, req.Flow)
	if err != nil {
		return nil, err
	}
	res := name(KindFlow, tenant, req.Flow)
	if _, err := h.s.deps.Resources.Get(ctx, KindFlow, tenant, req.Flow); err != nil {
		return nil, storeError(res, err)
	}
	flows, err := h.s.compileTenant(ctx, h.s.deps.Resources, tenant)
	if err != nil {
		return nil, apiError(connect.CodeFailedPrecondition, ReasonInvalid, res, "fix the resource it names, then test again", err)
	}
	i := slices.IndexFunc(flows, func(f *flowconfig.Flow) bool { return f.Name == req.Flow })
	if i < 0 {
		return nil, storeError(res, fmt.Errorf("flow %s of tenant %s: not found", req.Flow, tenant))
	}
	f := flows[i]
	if req.Record == nil {
		return nil, apiError(connect.CodeInvalidArgument, ReasonInvalid, res, "", fieldErr("record", "a sample source record is required: the payload of a change event, as a JSON object"))
	}
	source, err := json.Marshal(req.Record)
	if err != nil {
		return nil, apiError(connect.CodeInvalidArgument, ReasonInvalid, res, "", fieldErr("record", "%v", err))
	}
	// The same checks as a published record's: a sample is what a source sends.
	if err := envelope.CheckRecord(source); err != nil {
		return nil, apiError(connect.CodeInvalidArgument, ReasonInvalid, res, "", fieldErr("record", "%v", err))
	}
	out := &controlplanev1.TestFlowResponse{Key: strings.TrimSpace(req.Key)}
	if out.Key != "" {
		if err := envelope.ValidateKey(out.Key); err != nil {
			return nil, apiError(connect.CodeInvalidArgument, ReasonInvalid, res, "", fieldErr("key", "%v", err))
		}
	}
	skip := func(action, code, reason string) (*controlplanev1.TestFlowResponse, error) {
		out.Action, out.Code, out.Reason = action, code, reason
		return out, nil
	}
	if f.KeyField != "" {
		key, err := mapping.KeyOf(source, f.KeyField)
		if err != nil {
			return skip(string(recipe.Failed), stage.CodeMalformed, err.Error())
		}
		if key == "" {
			return skip(string(recipe.Skipped), stage.CodeNoKey, fmt.Sprintf("the record has no %s, the flow's key field", f.KeyField))
		}
		if err := envelope.ValidateKey(key); err != nil {
			return skip(string(recipe.Failed), stage.CodeMalformed, fmt.Sprintf("key field %s: %v", f.KeyField, err))
		}
		out.Key = key
	}
	if out.Key == "" {
		return nil, apiError(connect.CodeInvalidArgument, ReasonInvalid, res, "", fieldErr("key", "the flow takes its records' keys from the events (it has no keyField): give the record's key in the source"))
	}
	p, err := mapping.Compile(f.Mapping)
	if err != nil {
		return skip(string(recipe.Failed), stage.CodeMappingFailed, err.Error())
	}
	mapped, filtered, reason, err := p.ApplyJSON(source)
	switch {
	case err != nil:
		return skip(string(recipe.Failed), stage.CodeMappingFailed, err.Error())
	case filtered:
		return skip(string(recipe.Skipped), stage.CodeFiltered, reason)
	}
	if out.Mapped, err = toStructJSON(mapped); err != nil {
		return nil, apiError(connect.CodeInternal, ReasonInternal, res, "", err)
	}
	if f.Canonical {
		if err := entity.Check(f.Entity, mapped); err != nil {
			return skip(string(recipe.Failed), stage.CodeInvalidRecord, err.Error())
		}
	}

	ctx, cancel := context.WithTimeout(ctx, dryRunTimeout)
	defer cancel()
	t, err := h.s.openTarget(ctx, tenant, f.Target)
	if err != nil {
		var ce *connect.Error
		if errors.As(err, &ce) {
			return nil, ce
		}
		return nil, apiError(connect.CodeUnavailable, ReasonUnavailable, res, "check the target endpoint with `syncline endpoint test`", err)
	}
	defer func() {
		if err := t.Close(); err != nil {
			h.s.log.Warn("closing a tested target", "tenant", tenant, "endpoint", f.Target.Name, "error", err)
		}
	}()
	rf := recipe.For(f, *f.Target.Caps, f.Target.Related, nil)
	steps, err := recipe.Plan(ctx, t, rf, []sdk.Record{{Key: out.Key, Op: sdk.OpUpsert, Version: 1, Payload: mapped}})
	if err != nil {
		return nil, apiError(connect.CodeUnavailable, ReasonUnavailable, res, "check the target endpoint with `syncline endpoint test`", err)
	}
	st := steps[0]
	out.Action, out.TargetId, out.Code, out.Reason = string(st.Action), st.TargetID, st.Code, st.Reason
	for _, field := range slices.Sorted(maps.Keys(st.Diff)) {
		d := st.Diff[field]
		c := &controlplanev1.FieldChange{Field: field}
		if c.Current, err = toValue(d[0]); err == nil {
			c.New, err = toValue(d[1])
		}
		if err != nil {
			return nil, apiError(connect.CodeInternal, ReasonInternal, res, "", err)
		}
		out.Changes = append(out.Changes, c)
	}
	if st.Action == recipe.Updated && len(st.Diff) == 0 && st.Current != nil {
		out.Note = "the target holds the record as the flow would write it: the pipeline would skip it as unchanged"
	}
	if st.Action == recipe.Updated && f.Duplicates != "" && f.Duplicates != recipe.DuplicateUpdate {
		out.Note = fmt.Sprintf("the target holds this record: if the ledger knows it, a change updates it; if not (it was made in the target), the flow's duplicate policy %s applies", f.Duplicates)
	}
	return out, nil
}

// openTarget opens an endpoint's target as the connector would: its
// settings with its credentials opened, through the egress policy with its
// tenant's own rules. ctx bounds the opening.
func (s *Service) openTarget(ctx context.Context, tenant string, ep flowconfig.Endpoint) (sdk.Target, error) {
	settings, env, err := s.openEndpoint(ctx, tenant, ep)
	if err != nil {
		return nil, err
	}
	return s.deps.Connectors.OpenTarget(ctx, ep.Type, settings, env)
}

// openSource opens a polled endpoint as the connector would, for a test.
func (s *Service) openSource(ctx context.Context, tenant string, ep flowconfig.Endpoint) (sdk.Source, error) {
	settings, env, err := s.openEndpoint(ctx, tenant, ep)
	if err != nil {
		return nil, err
	}
	return s.deps.Connectors.OpenSource(ctx, ep.Type, settings, env)
}

// openEndpoint opens an endpoint's credentials and the egress policy it is opened under.
func (s *Service) openEndpoint(ctx context.Context, tenant string, ep flowconfig.Endpoint) (map[string]any, sdk.Env, error) {
	res := name(KindEndpoint, tenant, ep.Name)
	settings, err := ep.OpenSettings(tenant, s.deps.Secrets)
	switch {
	case errors.Is(err, flowconfig.ErrNoMasterKey):
		return nil, sdk.Env{}, apiError(connect.CodeFailedPrecondition, ReasonNoMasterKey, res, "set the control plane's master key", err)
	case err != nil:
		return nil, sdk.Env{}, apiError(connect.CodeFailedPrecondition, ReasonNoMasterKey, res, "give the credentials again with `syncline apply`", err)
	}
	own, err := s.tenantEgress(ctx, tenant, nil)
	if err != nil {
		return nil, sdk.Env{}, err
	}
	egress := s.deps.Egress.WithTenants(func(string) sdk.TenantEgress { return own })
	return settings, sdk.Env{Tenant: tenant, Egress: egress, ReadOnly: true}, nil
}

// endpointError turns an error of s.endpoint into the API's.
func (s *Service) endpointError(res string, err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	return storeError(res, err)
}

// describeEntities says, per entity, what an endpoint with these settings
// serves.
func describeEntities(spec sdk.Spec, settings map[string]any) []string {
	if spec.Entities == nil {
		return nil
	}
	all, err := spec.Entities(settings)
	if err != nil {
		return []string{err.Error()}
	}
	out := make([]string, 0, len(all))
	for _, c := range all {
		var can []string
		if len(c.FindBy) > 0 {
			can = append(can, "find by "+strings.Join(c.FindBy, ", "))
		}
		for _, x := range []struct {
			ok   bool
			name string
		}{{c.Read, "read"}, {c.Create, "create"}, {c.Update, "update"}, {c.Delete, "delete"}, {c.Canonical, "canonical shape"}} {
			if x.ok {
				can = append(can, x.name)
			}
		}
		if len(c.States) > 0 {
			can = append(can, "states "+strings.Join(c.States, ", ")+" (default "+c.States[0]+")")
		}
		if len(c.Types) > 0 {
			can = append(can, "types "+strings.Join(c.Types, ", "))
		}
		name := c.Entity
		if name == sdk.AnyEntity {
			name = "any entity"
		}
		out = append(out, name+": "+strings.Join(can, "; "))
	}
	return out
}

// toStructJSON renders a JSON object as a protobuf Struct.
func toStructJSON(b []byte) (*structpb.Struct, error) {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return structpb.NewStruct(m)
}

// toValue renders a JSON value as a protobuf Value.
func toValue(b []byte) (*structpb.Value, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return structpb.NewValue(v)
}
