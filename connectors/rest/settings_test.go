package rest_test

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/syncline/syncline/pkg/connector"
)

func TestSettingsErrorsNameTheirPath(t *testing.T) {
	r := registry(t)
	entity := func(settings map[string]any) map[string]any {
		return map[string]any{"base_url": "https://shop.example.com/api", "entities": map[string]any{"customer": settings}}
	}
	with := func(extra map[string]any) map[string]any {
		s := entity(map[string]any{"path": "/customers"})
		maps.Copy(s, extra)
		return s
	}
	for _, tt := range []struct {
		name     string
		settings map[string]any
		want     []string
	}{
		{"nothing", map[string]any{}, []string{
			"settings.base_url: required",
			"settings.entities: required",
		}},
		{"base url", with(map[string]any{"base_url": "ftp://shop.example.com"}), []string{
			`settings.base_url: "ftp://shop.example.com" must start with http:// or https://`,
		}},
		{"base url with a password", with(map[string]any{"base_url": "https://me:hunter2@shop.example.com"}), []string{
			"settings.base_url: must not hold a user or password: set auth and give them as credentials",
		}},
		{"base url with a query", with(map[string]any{"base_url": "https://shop.example.com/?x=1"}), []string{
			`settings.base_url: "https://shop.example.com/?x=1" must not have a query or fragment`,
		}},
		{"base url without host", with(map[string]any{"base_url": "http://:8080"}), []string{
			`settings.base_url: "http://:8080" names no host`,
		}},
		{"no entity", with(map[string]any{"entities": map[string]any{}}), []string{
			"settings.entities: names no entity",
		}},
		{"auth typo", with(map[string]any{"auth": "oauth"}), []string{
			`settings.auth: "oauth" is not one of none, bearer, basic, api_key`,
		}},
		{"bearer without token", with(map[string]any{"auth": "bearer"}), []string{
			"settings.token: required with auth bearer: give the bearer token as the credential token",
		}},
		{"api key without token", with(map[string]any{"auth": "api_key"}), []string{
			"settings.token: required with auth api_key",
		}},
		{"api key header", with(map[string]any{"auth": "api_key", "token": "hunter2", "api_key_header": "X Key"}), []string{
			`settings.api_key_header: "X Key" is not valid`,
		}},
		{"basic without user and password", with(map[string]any{"auth": "basic"}), []string{
			"settings.user: required with auth basic",
			"settings.password: required with auth basic",
		}},
		{"credentials auth does not send", with(map[string]any{"token": "hunter2", "password": "hunter2", "user": "me"}), []string{
			"settings.token: given, but auth is none",
			"settings.password: given, but auth is none",
			"settings.user: given, but auth is none",
		}},
		{"timeout", with(map[string]any{"timeout": "0s"}), []string{
			"settings.timeout: must be more than 0",
		}},
		{"budget", with(map[string]any{"max_requests_per_second": -1}), []string{
			"settings.max_requests_per_second: must be 0 (no limit) or more",
		}},
		{"entity is not a map", with(map[string]any{"entities": map[string]any{"customer": "/customers"}}), []string{
			"settings.entities.customer: must be a map of settings",
		}},
		{"entity name", with(map[string]any{"entities": map[string]any{"Customer": map[string]any{"path": "/customers"}}}), []string{
			"settings.entities.Customer: the entity name must be lower-case",
		}},
		{"entity without path", entity(map[string]any{}), []string{
			"settings.entities.customer.path: required: the collection's path under base_url, such as /customers",
		}},
		{"entity paths", entity(map[string]any{"path": "customers?all=1", "item_path": "/customers/{ref}"}), []string{
			`settings.entities.customer.path: "customers?all=1" must start with '/'`,
			`settings.entities.customer.item_path: "/customers/{ref}" must start with '/' and hold {id} once`,
		}},
		{"entity settings", entity(map[string]any{"path": "/customers", "update_method": "POST", "delete": "yes", "ref_field": 7, "id_field": "", "lookup": map[string]any{"Email": "email", "phone": ""}, "pathh": "/c"}), []string{
			"settings.entities.customer.update_method: must be PATCH (send the changed fields) or PUT (send the whole record)",
			"settings.entities.customer.delete: must be true or false",
			"settings.entities.customer.ref_field: must be a string",
			"settings.entities.customer.id_field: must not be empty",
			"settings.entities.customer.lookup.Email: the find field must be lower-case",
			"settings.entities.customer.lookup.phone: must be the name of a query parameter",
			"settings.entities.customer.pathh: unknown setting; an entity's settings are path, item_path, lookup, ref_field, id_field, items_field, update_method, delete, canonical, refs_field, state_field, states",
		}},
		{"document settings", entity(map[string]any{"path": "/orders", "canonical": "yes", "states": []any{"open", 3}}), []string{
			"settings.entities.customer.canonical: must be true or false",
			"settings.entities.customer.states: must be a list of the states the API takes a document to",
			"settings.entities.customer.state_field: required with states",
		}},
		{"lookup is not a map", entity(map[string]any{"path": "/customers", "lookup": "email"}), []string{
			"settings.entities.customer.lookup: must be a map of find fields to query parameters",
		}},
		{"source is not a map", entity(map[string]any{"path": "/customers", "source": "updatedAt"}), []string{
			"settings.entities.customer.source: must be a map of settings (path, key_field, changed_field,",
		}},
		{"source without its required settings", entity(map[string]any{"path": "/customers", "source": map[string]any{}}), []string{
			"settings.entities.customer.source.changed_field: required: the record field that holds when it last changed, such as updatedAt",
			"settings.entities.customer.source.since_param: required: the query parameter that asks for records changed at or after a time, such as updatedAt_gte",
		}},
		{"source settings", entity(map[string]any{"path": "/customers", "source": map[string]any{
			"path": "changes", "key_field": "", "changed_field": "meta..at", "changed_format": "iso", "since_param": "updated since",
			"sort": map[string]any{"_sort": 1, "updatedAt_gte": "x"}, "records_field": "data..items", "page_size": 1, "pagination": "pages", "limit": 10,
		}}), []string{
			`settings.entities.customer.source.path: "changes" must start with '/'`,
			"settings.entities.customer.source.key_field: must not be empty",
			`settings.entities.customer.source.changed_field: "meta..at" must be a field name, or names joined by '.'`,
			`settings.entities.customer.source.changed_format: "iso" is not one of rfc3339 (a string such as 2026-03-01T12:00:00.000Z), unix (seconds since 1970) or unix_ms (milliseconds since 1970)`,
			`settings.entities.customer.source.since_param: "updated since" is not a query parameter name`,
			`settings.entities.customer.source.sort._sort: must be a query parameter with a string value`,
			`settings.entities.customer.source.records_field: "data..items" must be a field name`,
			"settings.entities.customer.source.page_size: must be a whole number from 2 to 10000",
			`settings.entities.customer.source.pagination: "pages" is not one of page (page_param and limit_param), offset (offset_param and limit_param), cursor (cursor_field sent back as cursor_param) or link (the Link header's rel="next")`,
			"settings.entities.customer.source.limit: unknown setting; a polled entity's settings are path, key_field, changed_field, changed_format, since_param, sort, records_field, deleted_field, page_size, pagination, page_param, limit_param, offset_param, cursor_param, cursor_field",
		}},
		{"cursor pagination without its settings", entity(map[string]any{"path": "/customers", "source": map[string]any{
			"changed_field": "updatedAt", "since_param": "updatedAt_gte", "pagination": "cursor", "limit_param": "", "sort": map[string]any{"updatedAt_gte": "0"},
		}}), []string{
			"settings.entities.customer.source.cursor_param: required with pagination cursor: the query parameter that takes the next page's cursor, such as cursor",
			"settings.entities.customer.source.cursor_field: required with pagination cursor: the answer's field that holds the next page's cursor",
			"settings.entities.customer.source.records_field: required with pagination cursor: the answer is an object around the records and the cursor",
			"settings.entities.customer.source.limit_param: required with pagination cursor",
			"settings.entities.customer.source.sort.updatedAt_gte: is the since_param, which the source sets itself",
		}},
		{"offset pagination without its parameter", entity(map[string]any{"path": "/customers", "source": map[string]any{
			"changed_field": "updatedAt", "since_param": "updatedAt_gte", "pagination": "offset", "offset_param": "", "page_size": 2.5,
		}}), []string{
			"settings.entities.customer.source.offset_param: required with pagination offset: the query parameter of the first record's offset, such as _start",
			"settings.entities.customer.source.page_size: must be a whole number from 2 to 10000",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The apply-time check (CheckEgress, through Reaches) finds what the registry's
			// validation cannot.
			err := r.CheckEgress(context.Background(), "rest", tt.settings, connector.Env{Tenant: "acme", Egress: mustEgress(t)})
			if err == nil {
				t.Fatal("settings accepted, want errors")
			}
			var se *connector.SettingsError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SettingsError", err)
			}
			if lines := strings.Split(err.Error(), "\n"); len(lines) != len(tt.want) {
				t.Errorf("%d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error\n%v\nlacks %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows a secret", err)
			}
			// The control plane's entity check reads the same settings and refuses them too.
			spec, _ := r.Spec("rest")
			valid, verr := r.ValidateSettings("rest", tt.settings)
			if verr == nil {
				if _, err := spec.Entities(valid); err == nil {
					t.Error("Entities accepted the settings")
				}
			}
		})
	}
}

func mustEgress(t *testing.T) *connector.Egress {
	t.Helper()
	e, err := connector.NewEgress(connector.EgressConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestSettingsSayWhatTheTargetReachesAndServes(t *testing.T) {
	r := registry(t)
	settings := shopSettings("https://shop.example.com/api/")
	dests, err := r.Destinations("rest", settings)
	if err != nil {
		t.Fatal(err)
	}
	if want := []connector.Destination{{Setting: "settings.base_url", Host: "shop.example.com", Port: 443}}; !reflect.DeepEqual(dests, want) {
		t.Errorf("Destinations = %+v, want %+v", dests, want)
	}
	settings["base_url"] = "http://10.1.2.3:8080"
	if dests, _ := r.Destinations("rest", settings); len(dests) != 1 || dests[0].Host != "10.1.2.3" || dests[0].Port != 8080 {
		t.Errorf("Destinations = %+v, want 10.1.2.3:8080", dests)
	}

	spec, _ := r.Spec("rest")
	valid, err := r.ValidateSettings("rest", settings)
	if err != nil {
		t.Fatal(err)
	}
	caps, err := spec.Entities(valid)
	if err != nil {
		t.Fatal(err)
	}
	want := []connector.Capabilities{
		{Entity: "customer", FindBy: []string{"email", "external_ref"}, Read: true, Create: true, Update: true, Delete: true},
		{Entity: "product", FindBy: []string{"external_ref", "sku"}, Read: true, Create: true, Update: true},
	}
	if !reflect.DeepEqual(caps, want) {
		t.Errorf("Entities = %+v, want %+v", caps, want)
	}
	if got := connector.BudgetFromSettings(valid); got != (connector.BudgetConfig{}) {
		t.Errorf("default budget = %+v, want no limits", got)
	}
}

func TestSettingsSayWhatIsPolled(t *testing.T) {
	r := registry(t)
	if !r.Polls("rest") {
		t.Fatal("rest endpoints are not polled")
	}
	settings := pollSettings("https://shop.example.com/api", "page", 50, nil)
	settings["entities"].(map[string]any)["product"] = map[string]any{"path": "/products"}
	if err := r.SourceEntities("rest", settings, "customer"); err != nil {
		t.Errorf("customer is not polled: %v", err)
	}
	err := r.SourceEntities("rest", settings, "product")
	var se *connector.SettingsError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), `entity: a rest endpoint with these settings cannot be polled for "product"; it can be for customer`) {
		t.Errorf("polling products: %v, want a settings error naming customer", err)
	}
	// An endpoint with no entity to poll cannot be opened as a source.
	_, err = r.OpenSource(context.Background(), "rest", shopSettings("http://127.0.0.1:9"), localEnv(t, nil))
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "settings.entities: no entity has source settings, so there is nothing to poll") {
		t.Errorf("opening a source with nothing to poll: %v, want a settings error", err)
	}
	// The source is opened only where the egress policy allows.
	_, err = r.OpenSource(context.Background(), "rest", pollSettings("http://127.0.0.1:9", "page", 4, nil), connector.Env{Tenant: "acme", Egress: mustEgress(t)})
	if !errors.As(err, &se) || se.Path != "settings.base_url" {
		t.Errorf("opening a source the policy does not allow: %v, want a settings error of settings.base_url", err)
	}
}
