package rest

import (
	"context"
	"encoding/json"
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
	// Source says how the entity's changes are polled; nil when they are not.
	Source *Source
}

// The pagination styles of a polled entity.
const (
	// PagePages asks for page n of page_size records (json-server's _page and _limit).
	PagePages = "page"
	// PageOffset asks for page_size records from an offset (json-server's _start and _limit).
	PageOffset = "offset"
	// PageCursor sends back the cursor the answer names (cursor_field) as cursor_param.
	PageCursor = "cursor"
	// PageLink follows the answer's Link header to its rel="next".
	PageLink = "link"
)

// The formats of a polled entity's changed field.
const (
	ChangedRFC3339 = "rfc3339"
	ChangedUnix    = "unix"
	ChangedUnixMS  = "unix_ms"
)

// Source is how the API serves one entity's changes to polling: records changed at or after
// a time, sorted by when they changed (then by key), page by page.
type Source struct {
	// Path is the collection to read; the entity's path unless set.
	Path string
	// KeyField is the record field that holds its key; the entity's id_field unless set.
	KeyField string
	// ChangedField is the record field (a dotted path for a nested one) that holds when the
	// record last changed, in ChangedFormat.
	ChangedField, ChangedFormat string
	// SinceParam is the query parameter that asks for records changed at or after a time
	// (json-server: updatedAt_gte). Every read but the first sends it.
	SinceParam string
	// Sort holds the query parameters that sort the answer by the changed field, then by the
	// key, ascending (json-server: _sort=updatedAt,id and _order=asc,asc).
	Sort map[string]string
	// RecordsField is where the records are in the answer (a dotted path); empty when the
	// answer is the list itself.
	RecordsField string
	// DeletedField is the record field that marks it deleted (true, or a non-empty string
	// such as a deleted-at time); empty when the API does not keep deleted records.
	DeletedField string
	PageSize     int
	Pagination   string
	// PageParam, LimitParam and OffsetParam are the query parameters of the page and
	// offset styles (the link style sends PageParam=1 and LimitParam on its first request);
	// CursorParam and CursorField those of the cursor style.
	PageParam, LimitParam, OffsetParam string
	CursorParam, CursorField           string
}

// sourceKeys are the settings of a polled entity, in the order messages list them.
var sourceKeys = []string{"path", "key_field", "changed_field", "changed_format", "since_param", "sort", "records_field", "deleted_field",
	"page_size", "pagination", "page_param", "limit_param", "offset_param", "cursor_param", "cursor_field"}

const (
	defaultPageSize = 100
	maxPageSize     = 10000
)

var (
	// paramPattern is a query parameter's name.
	paramPattern = regexp.MustCompile(`^[^\s&=#?]+$`)
	// fieldPathPattern is a field of a record or an answer, with '.' between the names of
	// nested ones.
	fieldPathPattern = regexp.MustCompile(`^[^.\s]+(\.[^.\s]+)*$`)
)

// entityKeys are the settings of one entity, in the order messages list them.
var entityKeys = []string{"path", "item_path", "lookup", "ref_field", "id_field", "items_field", "update_method", "delete", "canonical", "refs_field", "state_field", "states", "source"}

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
		Summary:  "Writes records to an HTTP API that speaks JSON: per entity a collection to find records in (by query parameter) and create them in (POST), and an item path to update (PUT or PATCH) and delete them; and polls the entities with source settings for the records changed since a time, page by page.",
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
				Summary: "per entity (customer, product, ...): path (the collection, /customers), item_path (default path/{id}), lookup (find field -> query parameter, such as email: email; external_ref defaults to ref_field), ref_field (the record field that stores the source key, default external_ref), id_field (default id), items_field (when the collection's answer is an object around the list), update_method (PATCH or PUT, default PATCH), delete (default false), canonical (the API takes the entity's canonical shape, and documents go through the order recipe; default false), refs_field (the field a document carries the ids of its customer, products or invoice in), state_field and states (the field that carries how far the API takes a document, and the states it takes, the default first), source (to poll the entity's changes: path (default the entity's), key_field (default id_field), changed_field (required, such as updatedAt), changed_format (rfc3339, unix or unix_ms; default rfc3339), since_param (required: the query parameter asking for records changed at or after a time, such as updatedAt_gte), sort (query parameters sorting by the changed field then the key, ascending, such as {_sort: \"updatedAt,id\", _order: \"asc,asc\"}), records_field (where the records are in the answer; default items_field, else the answer is the list), deleted_field (a field that marks a record deleted), page_size (default 100), pagination (page, offset, cursor or link; default page), page_param (default _page), limit_param (default _limit), offset_param (default _start), cursor_param and cursor_field (the cursor style's))"},
		},
	}
}

// Register registers the "rest" target with its spec and factory, and its polled side: the
// entities with source settings.
func Register(r *connector.Registry) error {
	err := r.RegisterTarget(spec(), func(ctx context.Context, settings map[string]any, env connector.Env) (connector.Target, error) {
		s, err := parse(settings)
		if err != nil {
			return nil, err
		}
		return Open(ctx, s, env)
	})
	if err != nil {
		return err
	}
	return r.RegisterPolling(Type, func(ctx context.Context, settings map[string]any, env connector.Env) (connector.Source, error) {
		s, err := parse(settings)
		if err != nil {
			return nil, err
		}
		return OpenSource(ctx, s, env)
	}, sourceEntities)
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
	if raw, ok := m["source"]; ok && raw != nil {
		src, more := parseSource(raw, e)
		for _, p := range more {
			problems = append(problems, problem{".source" + p.path, p.reason})
		}
		e.Source = src
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

// parseSource reads a polled entity's source settings; e holds the entity's own, whose path,
// id_field and items_field are the defaults.
func parseSource(v any, e Entity) (*Source, []problem) {
	var problems []problem
	fail := func(key, format string, args ...any) {
		problems = append(problems, problem{"." + key, fmt.Sprintf(format, args...)})
	}
	m, ok := asMap(v)
	if !ok {
		return nil, []problem{{"", "must be a map of settings (" + strings.Join(sourceKeys, ", ") + ")"}}
	}
	s := &Source{
		Path: e.Path, KeyField: e.IDField, RecordsField: e.ItemsField,
		ChangedFormat: ChangedRFC3339, PageSize: defaultPageSize, Pagination: PagePages,
		PageParam: "_page", LimitParam: "_limit", OffsetParam: "_start", Sort: map[string]string{},
	}
	str := func(key string, into *string) {
		raw, ok := m[key]
		if !ok || raw == nil {
			return
		}
		if str, ok := raw.(string); ok {
			*into = str
		} else {
			fail(key, "must be a string")
		}
	}
	str("path", &s.Path)
	str("key_field", &s.KeyField)
	str("changed_field", &s.ChangedField)
	str("changed_format", &s.ChangedFormat)
	str("since_param", &s.SinceParam)
	str("records_field", &s.RecordsField)
	str("deleted_field", &s.DeletedField)
	str("pagination", &s.Pagination)
	str("page_param", &s.PageParam)
	str("limit_param", &s.LimitParam)
	str("offset_param", &s.OffsetParam)
	str("cursor_param", &s.CursorParam)
	str("cursor_field", &s.CursorField)
	if raw, ok := m["page_size"]; ok && raw != nil {
		n, ok := wholeNumber(raw)
		if !ok || n < 2 || n > maxPageSize {
			fail("page_size", "must be a whole number from 2 to %d: how many records one request asks for", maxPageSize)
		} else {
			s.PageSize = int(n)
		}
	}
	if raw, ok := m["sort"]; ok && raw != nil {
		sort, ok := asMap(raw)
		if !ok {
			fail("sort", "must be a map of query parameters to values, such as {_sort: \"updatedAt,id\", _order: \"asc,asc\"}")
		}
		for _, param := range slices.Sorted(maps.Keys(sort)) {
			value, ok := sort[param].(string)
			if !ok || !paramPattern.MatchString(param) {
				fail("sort."+param, "must be a query parameter with a string value, such as _sort: \"updatedAt,id\"")
				continue
			}
			s.Sort[param] = value
		}
	}

	switch {
	case s.Path == "":
		fail("path", "required: the collection's path under base_url, such as /customers (the entity's path is the default)")
	case !pathPattern.MatchString(s.Path):
		fail("path", "%q must start with '/' and hold no query, space or braces, such as /customers", s.Path)
	}
	if s.KeyField == "" {
		fail("key_field", "must not be empty: the record field that holds its key, such as id")
	}
	switch {
	case s.ChangedField == "":
		fail("changed_field", "required: the record field that holds when it last changed, such as updatedAt")
	case !fieldPathPattern.MatchString(s.ChangedField):
		fail("changed_field", "%q must be a field name, or names joined by '.' for a nested field, such as updatedAt or meta.updated_at", s.ChangedField)
	}
	if !slices.Contains([]string{ChangedRFC3339, ChangedUnix, ChangedUnixMS}, s.ChangedFormat) {
		fail("changed_format", "%q is not one of rfc3339 (a string such as 2026-03-01T12:00:00.000Z), unix (seconds since 1970) or unix_ms (milliseconds since 1970)", s.ChangedFormat)
	}
	switch {
	case s.SinceParam == "":
		fail("since_param", "required: the query parameter that asks for records changed at or after a time, such as updatedAt_gte")
	case !paramPattern.MatchString(s.SinceParam):
		fail("since_param", "%q is not a query parameter name", s.SinceParam)
	}
	for key, path := range map[string]string{"records_field": s.RecordsField, "deleted_field": s.DeletedField, "cursor_field": s.CursorField} {
		if path != "" && !fieldPathPattern.MatchString(path) {
			fail(key, "%q must be a field name, or names joined by '.' for a nested field", path)
		}
	}
	params := map[string]*string{"page_param": &s.PageParam, "limit_param": &s.LimitParam, "offset_param": &s.OffsetParam, "cursor_param": &s.CursorParam}
	for _, key := range slices.Sorted(maps.Keys(params)) {
		if p := *params[key]; p != "" && !paramPattern.MatchString(p) {
			fail(key, "%q is not a query parameter name", p)
		}
	}
	need := func(key, value, why string) {
		if value == "" {
			fail(key, "required with pagination %s: %s", s.Pagination, why)
		}
	}
	switch s.Pagination {
	case PagePages:
		need("page_param", s.PageParam, "the query parameter of the page number, such as _page")
		need("limit_param", s.LimitParam, "the query parameter of the page size, such as _limit")
	case PageOffset:
		need("offset_param", s.OffsetParam, "the query parameter of the first record's offset, such as _start")
		need("limit_param", s.LimitParam, "the query parameter of the page size, such as _limit")
	case PageLink:
		need("limit_param", s.LimitParam, "the query parameter of the page size, such as _limit or per_page")
	case PageCursor:
		need("cursor_param", s.CursorParam, "the query parameter that takes the next page's cursor, such as cursor")
		need("cursor_field", s.CursorField, "the answer's field that holds the next page's cursor, such as next_cursor or meta.next")
		need("records_field", s.RecordsField, "the answer is an object around the records and the cursor; name the field of the records, such as data")
		need("limit_param", s.LimitParam, "the query parameter of the page size, such as limit")
	default:
		fail("pagination", "%q is not one of page (page_param and limit_param), offset (offset_param and limit_param), cursor (cursor_field sent back as cursor_param) or link (the Link header's rel=\"next\")", s.Pagination)
	}
	if _, ok := s.Sort[s.SinceParam]; ok && s.SinceParam != "" {
		fail("sort."+s.SinceParam, "is the since_param, which the source sets itself")
	}
	var unknown []string
	for key := range m {
		if !slices.Contains(sourceKeys, key) {
			unknown = append(unknown, key)
		}
	}
	slices.Sort(unknown)
	for _, key := range unknown {
		fail(key, "unknown setting; a polled entity's settings are %s", strings.Join(sourceKeys, ", "))
	}
	return s, problems
}

// wholeNumber reads a whole number as decoders give it: an int, an int64, or a float64 or
// json.Number without a fraction.
func wholeNumber(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case float64:
		if n == float64(int64(n)) {
			return int64(n), true
		}
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}
