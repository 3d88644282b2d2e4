package rest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/syncline/syncline/pkg/connector"
)

// Type is the connector type name endpoints use for this target.
const Type = "rest"

// The ways the target proves who it is.
const (
	AuthNone   = "none"
	AuthBearer = "bearer"
	AuthBasic  = "basic"
	AuthAPIKey = "api_key"
)

const (
	defaultTimeout      = 30 * time.Second
	defaultAPIKeyHeader = "X-API-Key"
	defaultIDField      = "id"
	defaultRefField     = connector.FieldExternalRef
	// headerName is an HTTP header name (RFC 9110's token).
	headerName = "[!#$%&'*+.^_`|~0-9A-Za-z-]+"
	// idPlaceholder is where an item path takes the record's id.
	idPlaceholder = "{id}"
)

// Settings configure one rest target. See spec for what each means.
type Settings struct {
	BaseURL      *url.URL
	Auth         string
	Token        string
	User         string
	Password     string
	APIKeyHeader string
	Timeout      time.Duration
	Entities     map[string]Entity
	Budget       connector.BudgetConfig
}

// Entity is how the API serves one entity.
type Entity struct {
	// Path is the collection's path under the base URL: /customers.
	Path string
	// ItemPath is one record's path, with {id} where its id goes: /customers/{id}.
	ItemPath string
	// Lookup maps each field the target finds records by to the query parameter of the
	// collection that filters on it; FieldExternalRef is always there.
	Lookup map[string]string
	// RefField is the JSON field of a record that stores its external reference.
	RefField string
	// IDField is the JSON field of a record that holds its id.
	IDField string
	// ItemsField is the field of the collection's answer that holds the list, when the
	// answer is an object around it; empty when the answer is the list.
	ItemsField string
	// UpdateMethod is PATCH (send the changed fields) or PUT (send the whole record).
	UpdateMethod string
	// Delete says that the target may delete records.
	Delete bool
	// Canonical says that the API takes the entity in its canonical shape (pkg/entity):
	// the mapper checks records against it, and for a document (an order, an invoice, a
	// payment) the platform's document recipe runs: customer by e-mail, every SKU there,
	// then the document.
	Canonical bool
	// RefsField is the field a document's create and update carry the ids of what it
	// refers to in (connector.Write.Refs: {"customer": "17", "sku:TS-1": "4"}); StateField
	// the field that carries how far the API is to take it (connector.Write.State), and
	// States the states it takes, the default first. Empty fields send neither.
	RefsField, StateField string
	States                []string
}

// entityKeys are the settings of one entity, in the order messages list them.
var entityKeys = []string{"path", "item_path", "lookup", "ref_field", "id_field", "items_field", "update_method", "delete", "canonical", "refs_field", "state_field", "states"}

var (
	namePattern = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	// pathPattern is a path of the API: starting with '/', with no query, fragment, space or
	// placeholder other than {id}.
	pathPattern = regexp.MustCompile(`^/[^?#\s{}]*$`)
)

// spec is the single source of truth for the settings: Register hands it to the registry, and
// parse checks the rest (the entities, and settings that depend on each other).
func spec() connector.Spec {
	return connector.Spec{
		Type:     Type,
		Kind:     connector.KindTarget,
		Summary:  "Writes records to an HTTP API that speaks JSON: per entity a collection to find records in (by query parameter) and create them in (POST), and an item path to update (PUT or PATCH) and delete them.",
		Reaches:  reaches,
		Entities: entities,
		Fields: []connector.Field{
			{Name: "base_url", Type: connector.TypeString, Required: true,
				Summary: "the API's base URL, http:// or https://, optionally with a path prefix (https://shop.example.com/api); the entities' paths are under it"},
			{Name: "auth", Type: connector.TypeString, Default: AuthNone, Enum: []string{AuthNone, AuthBearer, AuthBasic, AuthAPIKey},
				Summary: "how the target proves who it is: none, bearer (the token in Authorization: Bearer), basic (user and password) or api_key (the token in the api_key_header header)"},
			{Name: "token", Type: connector.TypeString, Secret: true, Credential: true,
				Summary: "the bearer token (auth bearer) or the API key (auth api_key): a credential, given under spec.credentials"},
			{Name: "user", Type: connector.TypeString,
				Summary: "the user name for auth basic"},
			{Name: "password", Type: connector.TypeString, Secret: true, Credential: true,
				Summary: "the password for auth basic: a credential, given under spec.credentials"},
			{Name: "api_key_header", Type: connector.TypeString, Default: defaultAPIKeyHeader, Pattern: headerName,
				Summary: "the header that carries the API key for auth api_key"},
			{Name: "timeout", Type: connector.TypeDuration, Default: defaultTimeout.String(),
				Summary: "how long one request may take, answer included, before the target counts the API as down"},
			{Name: "entities", Type: connector.TypeMap, Required: true,
				Summary: "per entity (customer, product, ...): path (the collection, /customers), item_path (default path/{id}), lookup (find field -> query parameter, such as email: email; external_ref defaults to ref_field), ref_field (the record field that stores the source key, default external_ref), id_field (default id), items_field (when the collection's answer is an object around the list), update_method (PATCH or PUT, default PATCH), delete (default false), canonical (the API takes the entity's canonical shape, and documents go through the order recipe; default false), refs_field (the field a document carries the ids of its customer, products or invoice in), state_field and states (the field that carries how far the API takes a document, and the states it takes, the default first)"},
		},
	}
}

// Register registers the "rest" target with its spec and factory.
func Register(r *connector.Registry) error {
	return r.RegisterTarget(spec(), func(ctx context.Context, settings map[string]any, env connector.Env) (connector.Target, error) {
		s, err := parse(settings)
		if err != nil {
			return nil, err
		}
		return Open(ctx, s, env)
	})
}

// reaches lists the API's host and port.
func reaches(settings map[string]any) ([]connector.Destination, error) {
	s, err := parse(settings)
	if err != nil {
		return nil, err
	}
	return []connector.Destination{{Setting: "settings.base_url", Host: s.BaseURL.Hostname(), Port: port(s.BaseURL)}}, nil
}

// entities lists what the target can do with each entity of its settings.
func entities(settings map[string]any) ([]connector.Capabilities, error) {
	s, err := parse(settings)
	if err != nil {
		return nil, err
	}
	var caps []connector.Capabilities
	for _, name := range slices.Sorted(maps.Keys(s.Entities)) {
		e := s.Entities[name]
		caps = append(caps, connector.Capabilities{
			Entity: name,
			FindBy: slices.Sorted(maps.Keys(e.Lookup)),
			Read:   true,
			Create: true,
			Update: true,
			Delete: e.Delete,
			// A canonical document's state goes in its state_field.
			Canonical: e.Canonical,
			States:    e.States,
		})
	}
	return caps, nil
}

func port(u *url.URL) int {
	if p, err := strconv.Atoi(u.Port()); err == nil {
		return p
	}
	if u.Scheme == "https" {
		return 443
	}
	return 80
}

// parse reads settings the registry validated (defaults filled in, types right) and checks
// what the registry cannot: the base URL, the settings auth needs, and every entity. Every
// problem is a *connector.SettingsError naming its path; they are joined.
func parse(m map[string]any) (Settings, error) {
	var errs []error
	fail := func(path, format string, args ...any) {
		errs = append(errs, &connector.SettingsError{Path: "settings." + path, Reason: fmt.Sprintf(format, args...)})
	}
	var s Settings
	base, _ := m["base_url"].(string)
	s.Auth, _ = m["auth"].(string)
	s.Token, _ = m["token"].(string)
	s.User, _ = m["user"].(string)
	s.Password, _ = m["password"].(string)
	s.APIKeyHeader, _ = m["api_key_header"].(string)
	s.Timeout, _ = m["timeout"].(time.Duration)
	s.Budget = connector.BudgetFromSettings(m)

	if u, reason := parseBaseURL(base); reason != "" {
		fail("base_url", "%s", reason)
	} else {
		s.BaseURL = u
	}
	switch s.Auth {
	case AuthBearer, AuthAPIKey:
		if s.Token == "" {
			fail("token", "required with auth %s: give the %s as the credential token", s.Auth, map[string]string{AuthBearer: "bearer token", AuthAPIKey: "API key"}[s.Auth])
		}
	case AuthBasic:
		if s.User == "" {
			fail("user", "required with auth basic")
		}
		if s.Password == "" {
			fail("password", "required with auth basic: give it as the credential password")
		}
	}
	if s.Token != "" && s.Auth != AuthBearer && s.Auth != AuthAPIKey {
		fail("token", "given, but auth is %s, which sends no token: set auth to bearer or api_key, or leave the token out", s.Auth)
	}
	if s.Password != "" && s.Auth != AuthBasic {
		fail("password", "given, but auth is %s, which sends no password: set auth to basic, or leave the password out", s.Auth)
	}
	if s.User != "" && s.Auth != AuthBasic {
		fail("user", "given, but auth is %s, which sends no user: set auth to basic, or leave the user out", s.Auth)
	}
	if s.Timeout <= 0 {
		fail("timeout", "must be more than 0, such as 30s")
	}

	raw, _ := m["entities"].(map[string]any)
	if len(raw) == 0 {
		fail("entities", "names no entity; give at least one, such as customer: {path: /customers}")
	}
	s.Entities = map[string]Entity{}
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		path := "entities." + name
		if !namePattern.MatchString(name) {
			fail(path, "the entity name must be lower-case letters, digits, '_' or '-', starting with a letter")
			continue
		}
		e, problems := parseEntity(raw[name])
		for _, p := range problems {
			fail(path+p.path, "%s", p.reason)
		}
		if len(problems) == 0 {
			s.Entities[name] = e
		}
	}
	if len(errs) > 0 {
		return Settings{}, errors.Join(errs...)
	}
	return s, nil
}

// parseBaseURL checks a base URL, or says why it is not one.
func parseBaseURL(s string) (*url.URL, string) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, fmt.Sprintf("%q is not a URL", s)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Sprintf("%q must start with http:// or https://", s)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Sprintf("%q names no host", s)
	case u.User != nil:
		return nil, "must not hold a user or password: set auth and give them as credentials"
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Sprintf("%q must not have a query or fragment", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Sprintf("%q has port %s, which is not between 1 and 65535", s, p)
		}
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil && strings.ContainsAny(u.Hostname(), "_ ") {
		return nil, fmt.Sprintf("%q has a host name that is not valid", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, ""
}

type problem struct{ path, reason string }

// parseEntity reads one entity's settings, from YAML or JSON as decoded (a map of names to
// strings, booleans and maps).
func parseEntity(v any) (Entity, []problem) {
	var problems []problem
	fail := func(key, format string, args ...any) {
		problems = append(problems, problem{"." + key, fmt.Sprintf(format, args...)})
	}
	m, ok := asMap(v)
	if !ok {
		return Entity{}, []problem{{"", "must be a map of settings (" + strings.Join(entityKeys, ", ") + ")"}}
	}
	e := Entity{RefField: defaultRefField, IDField: defaultIDField, UpdateMethod: "PATCH", Lookup: map[string]string{}}
	str := func(key string, into *string) {
		raw, ok := m[key]
		if !ok || raw == nil {
			return
		}
		s, ok := raw.(string)
		if !ok {
			fail(key, "must be a string")
			return
		}
		*into = s
	}
	str("path", &e.Path)
	str("item_path", &e.ItemPath)
	str("ref_field", &e.RefField)
	str("id_field", &e.IDField)
	str("items_field", &e.ItemsField)
	str("update_method", &e.UpdateMethod)
	flag := func(key string, into *bool) {
		if raw, ok := m[key]; ok && raw != nil {
			if b, ok := raw.(bool); ok {
				*into = b
			} else {
				fail(key, "must be true or false")
			}
		}
	}
	flag("delete", &e.Delete)
	flag("canonical", &e.Canonical)
	str("refs_field", &e.RefsField)
	str("state_field", &e.StateField)
	if raw, ok := m["states"]; ok && raw != nil {
		list, ok := raw.([]any)
		for _, v := range list {
			if s, isStr := v.(string); isStr && s != "" {
				e.States = append(e.States, s)
			} else {
				ok = false
			}
		}
		if !ok || len(e.States) == 0 {
			fail("states", "must be a list of the states the API takes a document to, the default first, such as [draft, confirmed]")
		}
	}
	if len(e.States) > 0 && e.StateField == "" {
		fail("state_field", "required with states: the field that carries the state the document is to be taken to")
	}

	switch {
	case e.Path == "":
		fail("path", "required: the collection's path under base_url, such as /customers")
	case !pathPattern.MatchString(e.Path):
		fail("path", "%q must start with '/' and hold no query, space or braces, such as /customers", e.Path)
	}
	if e.ItemPath == "" && e.Path != "" {
		e.ItemPath = strings.TrimSuffix(e.Path, "/") + "/" + idPlaceholder
	}
	if e.ItemPath != "" && (strings.Count(e.ItemPath, idPlaceholder) != 1 ||
		!pathPattern.MatchString(strings.Replace(e.ItemPath, idPlaceholder, "x", 1))) {
		fail("item_path", "%q must start with '/' and hold {id} once, and no query, space or other braces, such as /customers/{id}", e.ItemPath)
	}
	if e.RefField == "" {
		fail("ref_field", "must not be empty")
	}
	if e.IDField == "" {
		fail("id_field", "must not be empty")
	}
	if e.UpdateMethod = strings.ToUpper(e.UpdateMethod); e.UpdateMethod != "PATCH" && e.UpdateMethod != "PUT" {
		fail("update_method", "must be PATCH (send the changed fields) or PUT (send the whole record)")
	}
	if raw, ok := m["lookup"]; ok && raw != nil {
		lookup, ok := asMap(raw)
		if !ok {
			fail("lookup", "must be a map of find fields to query parameters, such as {email: email}")
		}
		for _, field := range slices.Sorted(maps.Keys(lookup)) {
			param, ok := lookup[field].(string)
			switch {
			case !namePattern.MatchString(field):
				fail("lookup."+field, "the find field must be lower-case letters, digits or '_', as the records name it")
			case !ok || param == "":
				fail("lookup."+field, "must be the name of a query parameter, such as %s", field)
			default:
				e.Lookup[field] = param
			}
		}
	}
	if _, ok := e.Lookup[connector.FieldExternalRef]; !ok {
		e.Lookup[connector.FieldExternalRef] = e.RefField
	}
	var unknown []string
	for key := range m {
		if !slices.Contains(entityKeys, key) {
			unknown = append(unknown, key)
		}
	}
	slices.Sort(unknown)
	for _, key := range unknown {
		fail(key, "unknown setting; an entity's settings are %s", strings.Join(entityKeys, ", "))
	}
	return e, problems
}

// asMap accepts the maps decoders produce.
func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[string]string:
		out := make(map[string]any, len(m))
		for k, s := range m {
			out[k] = s
		}
		return out, true
	}
	return nil, false
}
