package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"connectrpc.com/connect"

	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/resourcefile"
)

// Secret is what a credential's value reads as: in every response, and in
// a file, where it means "keep the stored value".
const Secret = "(secret)"

// checkSettings checks an endpoint's settings and credentials against its
// connector's spec: secret settings belong in credentials, and credentials
// are the connector's secret settings only.
func (s *Service) checkSettings(es *EndpointSpec) error {
	cs, ok := s.deps.Connectors.Spec(es.Type)
	if !ok {
		_, err := s.deps.Connectors.ValidateSettings(es.Type, es.Settings)
		return fieldErr("spec.type", "%v", err)
	}
	secret := map[string]bool{}
	for _, f := range cs.Fields {
		secret[f.Name] = f.Credential
	}
	for k := range es.Settings {
		if secret[k] {
			return fieldErr("spec.settings."+k, "is a credential of connector %s: give it under spec.credentials, where it is stored encrypted", es.Type)
		}
	}
	merged := maps.Clone(es.Settings)
	if merged == nil {
		merged = map[string]any{}
	}
	for k, v := range es.Credentials {
		if !secret[k] {
			return fieldErr("spec.credentials."+k, "connector %s has no credential %q (its credentials: %s)", es.Type, k, secretNames(secret))
		}
		merged[k] = v
	}
	if _, err := s.deps.Connectors.ValidateSettings(es.Type, merged); err != nil {
		return fieldErr("spec.settings", "%v", err)
	}
	return nil
}

// checkEgress checks what an endpoint reaches against the egress policy, with
// its tenant's own rules as this apply leaves them. ctx bounds the name
// lookups.
func (s *Service) checkEgress(ctx context.Context, it *item, items []item) error {
	var es EndpointSpec
	if err := json.Unmarshal(it.res.Spec, &es); err != nil {
		return apiError(connect.CodeInternal, ReasonInternal, it.name(), "", err)
	}
	settings := reachSettings(es)
	own, err := s.tenantEgress(ctx, it.res.Tenant, items)
	if err != nil {
		return err
	}
	egress := s.deps.Egress.WithTenants(func(string) sdk.TenantEgress { return own })
	err = s.deps.Connectors.CheckEgress(ctx, es.Type, settings, sdk.Env{Tenant: it.res.Tenant, Egress: egress})
	if err == nil {
		return s.checkAnothersDatabase(ctx, it, items, es.Type, settings)
	}
	var se *sdk.SettingsError
	if errors.As(err, &se) {
		path := "spec." + se.Path
		err = fieldErr(path, "%s: %s", path, se.Reason)
	}
	return apiError(connect.CodePermissionDenied, ReasonEgress, it.name(), "", err)
}

// reachSettings are an endpoint's settings as far as what it reaches goes:
// its settings, and its credentials, whose values do not change that.
func reachSettings(es EndpointSpec) map[string]any {
	settings := maps.Clone(es.Settings)
	if settings == nil {
		settings = map[string]any{}
	}
	for k := range es.Credentials {
		settings[k] = Secret
	}
	return settings
}

// checkAnothersDatabase refuses an endpoint that opens a database an
// endpoint of another tenant opens: nothing crosses tenants, and a tenant's
// target database is its own. Servers are compared as the endpoints name
// them, the spellings of this machine as one, not by what names resolve
// to: keeping a tenant to its own hosts is the egress policy's part. The
// other tenant is not named.
func (s *Service) checkAnothersDatabase(ctx context.Context, it *item, items []item, typ string, settings map[string]any) error {
	dests, err := s.deps.Connectors.Destinations(typ, settings)
	if err != nil {
		return apiError(connect.CodeInvalidArgument, ReasonInvalid, it.name(), "", fieldErr("spec.settings", "%v", err))
	}
	mine := map[string]sdk.Destination{}
	for _, d := range dests {
		if d.Database != "" {
			mine[databaseKey(d)] = d
		}
	}
	if len(mine) == 0 {
		return nil
	}
	stored, err := s.deps.Resources.List(ctx, KindEndpoint, "")
	if err != nil {
		return storeError(it.name(), err)
	}
	others := map[string]json.RawMessage{}
	for _, r := range stored {
		if r.Tenant != it.res.Tenant {
			others[r.Tenant+"/"+r.Name] = r.Spec
		}
	}
	for _, o := range items {
		if o.res.Kind == KindEndpoint && o.res.Tenant != it.res.Tenant {
			others[o.res.Tenant+"/"+o.res.Name] = o.res.Spec
		}
	}
	for _, spec := range others {
		var es EndpointSpec
		if json.Unmarshal(spec, &es) != nil {
			continue
		}
		// A stored endpoint whose settings no longer check opens nothing.
		theirs, err := s.deps.Connectors.Destinations(es.Type, reachSettings(es))
		if err != nil {
			continue
		}
		for _, d := range theirs {
			if m, ok := mine[databaseKey(d)]; ok && d.Database != "" {
				path := "spec." + m.Setting
				return apiError(connect.CodePermissionDenied, ReasonEgress, it.name(), "",
					fieldErr(path, "%s: database %s on host %s is another tenant's; endpoints may never point at it", path, m.Database, net.JoinHostPort(m.Host, strconv.Itoa(m.Port))))
			}
		}
	}
	return nil
}

// databaseKey names a database on a server, with this machine's names and
// addresses (loopback, unspecified) as one.
func databaseKey(d sdk.Destination) string {
	h := strings.TrimSuffix(strings.ToLower(strings.Trim(d.Host, "[]")), ".")
	if a, err := netip.ParseAddr(h); err == nil {
		a = a.Unmap()
		h = a.String()
		if a.IsLoopback() || a.IsUnspecified() {
			h = "localhost"
		}
	}
	return net.JoinHostPort(h, strconv.Itoa(d.Port)) + "/" + d.Database
}

// tenantEgress is a tenant's own egress policy: the one an apply gives it, or
// the stored one.
func (s *Service) tenantEgress(ctx context.Context, tenant string, items []item) (sdk.TenantEgress, error) {
	spec := json.RawMessage(nil)
	for _, it := range items {
		if it.res.Kind == KindTenant && it.res.Name == tenant {
			spec = it.res.Spec
		}
	}
	if spec == nil {
		r, err := s.deps.Resources.Get(ctx, KindTenant, tenant, tenant)
		if err != nil {
			return sdk.TenantEgress{}, storeError(name(KindTenant, tenant, tenant), err)
		}
		spec = r.Spec
	}
	var ts TenantSpec
	if err := json.Unmarshal(spec, &ts); err != nil {
		return sdk.TenantEgress{}, apiError(connect.CodeInternal, ReasonInternal, name(KindTenant, tenant, tenant), "", err)
	}
	if ts.Egress == nil {
		return sdk.TenantEgress{}, nil
	}
	return *ts.Egress, nil
}

func secretNames(secret map[string]bool) string {
	var names []string
	for k, v := range secret {
		if v {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// storedCredentials reads what an endpoint's stored spec holds of its
// credentials.
func storedCredentials(spec json.RawMessage) (names map[string]string, sealed string) {
	var es EndpointSpec
	if len(spec) > 0 {
		_ = json.Unmarshal(spec, &es)
	}
	return es.Credentials, es.SealedCredentials
}

// sealCredentials turns the credentials an apply gives into what the store
// keeps: their names, each "(secret)", and one value sealed with the master
// key, bound to the tenant and endpoint. Credentials left out keep the
// stored ones; a value "(secret)" keeps that stored value; an empty map
// removes them all. Unchanged credentials keep their sealed text, so that
// applying the same file twice changes nothing.
func (s *Service) sealCredentials(it *item, old json.RawMessage) error {
	oldNames, oldSealed := storedCredentials(old)
	var spec map[string]any
	if err := json.Unmarshal(it.res.Spec, &spec); err != nil {
		return apiError(connect.CodeInternal, ReasonInternal, it.name(), "", err)
	}
	given := it.credentials
	binding := flowconfig.CredentialsBinding(it.res.Tenant, it.res.Name)
	// The stored values, when they can be read: after a change of master
	// key they cannot, and then every given value counts as new, and only a
	// "(secret)", which asks to keep a stored value, is refused.
	var oldPlain map[string]string
	var unreadable error
	if oldSealed != "" && given != nil {
		if s.deps.Secrets == nil {
			return noMasterKey(it.name())
		}
		b, err := s.deps.Secrets.Open(binding, oldSealed)
		if err == nil {
			err = json.Unmarshal(b, &oldPlain)
		}
		if err != nil {
			oldPlain, unreadable = nil, err
		}
	}
	it.changedCredentials = nil
	switch {
	case given == nil:
		// Keep what is stored.
		setCredentials(spec, oldNames, oldSealed)
	case len(given) == 0:
		setCredentials(spec, nil, "")
		it.changedCredentials = slices.Sorted(maps.Keys(oldNames))
	default:
		plain := map[string]string{}
		for k, v := range given {
			if v == Secret {
				if unreadable != nil {
					return apiError(connect.CodeFailedPrecondition, ReasonInvalid, it.name(),
						"give every credential's value again: the stored ones cannot be read with this master key", unreadable)
				}
				ov, ok := oldPlain[k]
				if !ok {
					return apiError(connect.CodeInvalidArgument, ReasonInvalid, it.name(), "give the credential's value",
						fieldErr("spec.credentials."+k, "is %q, which keeps a stored value, but none is stored", Secret))
				}
				v = ov
			}
			plain[k] = v
		}
		names := map[string]string{}
		for k := range plain {
			names[k] = Secret
			if oldPlain[k] != plain[k] {
				it.changedCredentials = append(it.changedCredentials, k)
			}
		}
		for k := range oldPlain {
			if _, ok := plain[k]; !ok {
				it.changedCredentials = append(it.changedCredentials, k)
			}
		}
		slices.Sort(it.changedCredentials)
		sealed := oldSealed
		if len(it.changedCredentials) > 0 {
			if s.deps.Secrets == nil {
				return noMasterKey(it.name())
			}
			b, err := json.Marshal(plain)
			if err != nil {
				return apiError(connect.CodeInternal, ReasonInternal, it.name(), "", err)
			}
			if sealed, err = s.deps.Secrets.Seal(binding, b); err != nil {
				return apiError(connect.CodeInternal, ReasonInternal, it.name(), "", err)
			}
		}
		setCredentials(spec, names, sealed)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return apiError(connect.CodeInternal, ReasonInternal, it.name(), "", err)
	}
	it.res.Spec = b
	return nil
}

func setCredentials(spec map[string]any, names map[string]string, sealed string) {
	delete(spec, "credentials")
	delete(spec, "sealedCredentials")
	if len(names) > 0 {
		spec["credentials"] = names
		spec["sealedCredentials"] = sealed
	}
}

// sealAlertSecret turns a tenant's alert secret as an apply gives it into
// what the store keeps: "(secret)" and the value sealed with the master key,
// bound to the tenant. A secret left out, or given as "(secret)", keeps the
// stored one; alerts with neither are refused. An unchanged secret keeps its
// sealed text, so that applying the same file twice changes nothing.
func (s *Service) sealAlertSecret(it *item, old json.RawMessage) error {
	var spec map[string]any
	if err := json.Unmarshal(it.res.Spec, &spec); err != nil {
		return apiError(connect.CodeInternal, ReasonInternal, it.name(), "", err)
	}
	alerts, _ := spec["alerts"].(map[string]any)
	it.changedCredentials = nil
	if alerts == nil {
		return nil
	}
	var stored TenantSpec
	if len(old) > 0 {
		_ = json.Unmarshal(old, &stored)
	}
	var oldSealed string
	if stored.Alerts != nil {
		oldSealed = stored.Alerts.SealedSecret
	}
	given, _ := alerts["secret"].(string)
	binding := flowconfig.AlertsBinding(it.res.Tenant)
	sealed := oldSealed
	switch {
	case given == "" || given == Secret:
		if oldSealed == "" {
			return apiError(connect.CodeInvalidArgument, ReasonInvalid, it.name(), "give the secret in spec.alerts.secret",
				fieldErr("spec.alerts.secret", "is required: every alert is signed with it (HMAC-SHA256), and none is stored"))
		}
	default:
		if s.deps.Secrets == nil {
			return noMasterKey(it.name())
		}
		if oldSealed != "" {
			if b, err := s.deps.Secrets.Open(binding, oldSealed); err == nil && string(b) == given {
				break
			}
		}
		var err error
		if sealed, err = s.deps.Secrets.Seal(binding, []byte(given)); err != nil {
			return apiError(connect.CodeInternal, ReasonInternal, it.name(), "", err)
		}
		if oldSealed != "" {
			it.changedCredentials = []string{"secret"}
		}
	}
	alerts["secret"] = Secret
	alerts["sealedSecret"] = sealed
	b, err := json.Marshal(spec)
	if err != nil {
		return apiError(connect.CodeInternal, ReasonInternal, it.name(), "", err)
	}
	it.res.Spec = b
	return nil
}

func noMasterKey(res string) error {
	return apiError(connect.CodeFailedPrecondition, ReasonNoMasterKey, res,
		"set SYNCLINE_MASTER_KEY on the control plane, the connector and the eventlog to 32 random bytes in base64 (`head -c32 /dev/urandom | base64`); syncline dev makes one in its data folder",
		errors.New("credentials and alert secrets are stored encrypted, and the control plane has no master key"))
}

// publicSpec is a stored spec as the API shows it: without the sealed
// credentials (their names stay, each "(secret)"), and with every setting
// the connector marks secret (a DSN, say) shown as "(secret)" too.
func (s *Service) publicSpec(kind string, stored json.RawMessage) (map[string]any, error) {
	var spec map[string]any
	if err := json.Unmarshal(stored, &spec); err != nil {
		return nil, fmt.Errorf("decoding the stored spec: %w", err)
	}
	switch kind {
	case KindEndpoint:
		delete(spec, "sealedCredentials")
		settings, _ := spec["settings"].(map[string]any)
		typ, _ := spec["type"].(string)
		for _, name := range s.secretSettings(typ) {
			if _, ok := settings[name]; ok {
				settings[name] = Secret
			}
		}
	case KindTenant:
		if alerts, ok := spec["alerts"].(map[string]any); ok {
			delete(alerts, "sealedSecret")
		}
	}
	return spec, nil
}

// specDiff shows what an apply changes in a spec, as a diff of the public
// views; a changed credential shows as "(secret, changed)", never its
// value.
func (s *Service) specDiff(kind string, old, new json.RawMessage, changedCredentials []string) (string, error) {
	var before map[string]any
	if old != nil {
		var err error
		if before, err = s.publicSpec(kind, old); err != nil {
			return "", err
		}
	}
	after, err := s.publicSpec(kind, new)
	if err != nil {
		return "", err
	}
	changed := Secret[:len(Secret)-1] + ", changed)"
	if alerts, ok := after["alerts"].(map[string]any); ok && kind == KindTenant && slices.Contains(changedCredentials, "secret") {
		alerts["secret"] = changed
	}
	if creds, ok := after["credentials"].(map[string]any); ok {
		for _, k := range changedCredentials {
			if _, ok := creds[k]; ok && before != nil {
				creds[k] = changed
			}
		}
	}
	return resourcefile.Diff(before, after), nil
}

// secretSettings names a connector's settings that are secret but not
// credentials: kept in the settings, never shown.
func (s *Service) secretSettings(typ string) []string {
	cs, ok := s.deps.Connectors.Spec(typ)
	if !ok {
		return nil
	}
	var names []string
	for _, f := range cs.Fields {
		if f.Secret && !f.Credential {
			names = append(names, f.Name)
		}
	}
	return names
}

// keepSecretSettings reads a secret setting given as "(secret)" — as get
// shows it — as "keep the stored value".
func (s *Service) keepSecretSettings(it *item, old json.RawMessage) error {
	var spec, stored map[string]any
	if err := json.Unmarshal(it.res.Spec, &spec); err != nil {
		return apiError(connect.CodeInternal, ReasonInternal, it.name(), "", err)
	}
	settings, _ := spec["settings"].(map[string]any)
	typ, _ := spec["type"].(string)
	changed := false
	for _, name := range s.secretSettings(typ) {
		if settings[name] != Secret {
			continue
		}
		if stored == nil && old != nil {
			_ = json.Unmarshal(old, &stored)
		}
		prev, _ := stored["settings"].(map[string]any)
		v, ok := prev[name]
		if !ok {
			return apiError(connect.CodeInvalidArgument, ReasonInvalid, it.name(), "give the setting's value",
				fieldErr("spec.settings."+name, "is %q, which keeps a stored value, but none is stored", Secret))
		}
		settings[name], changed = v, true
	}
	if !changed {
		return nil
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return apiError(connect.CodeInternal, ReasonInternal, it.name(), "", err)
	}
	it.res.Spec = b
	return nil
}
