// Package flowconfig carries compiled flow configurations from the control
// plane to the data plane through a JetStream key-value bucket. The control
// plane writes; mapper, dedup and connector watch and pick up every change
// without a restart.
package flowconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/mapping"
	"github.com/syncline/syncline/pkg/poll"
	"github.com/syncline/syncline/pkg/secret"
)

// Bucket is the key-value bucket's name.
const Bucket = "syncline_flows"

// Duplicate policies: what to do when a record the ledger already knows
// changes again.
const (
	DuplicateUpdate = "update" // overwrite the existing target record
	DuplicateSkip   = "skip"   // keep the existing target record
	DuplicateError  = "error"  // fail the event
)

// Endpoint is a connected system as the data plane needs it.
type Endpoint struct {
	Name     string         `json:"name"`
	Type     string         `json:"type"`
	Settings map[string]any `json:"settings,omitempty"`
	// KeyIsID: the connector identifies records by their source key (see
	// connector.Spec.KeyIsID).
	KeyIsID bool `json:"keyIsId,omitempty"`
	// Credentials are the endpoint's secret settings, sealed with the
	// master key (pkg/secret) and bound to the tenant and endpoint: the
	// connector opens them when it connects, and they are never in the
	// bucket in the clear.
	Credentials string `json:"credentials,omitempty"`
	// Caps is what a target endpoint can do with its flow's entity, as its connector
	// declares it for its settings; the control plane checked it against the flow.
	Caps *connector.Capabilities `json:"caps,omitempty"`
	// Related is what a target endpoint can do with the entities a document flow's records
	// refer to (customer, product, invoice), as its connector declares them: the document
	// recipe finds and makes those records (pkg/recipe). Nil for other flows.
	Related []connector.Capabilities `json:"related,omitempty"`
}

// ErrNoMasterKey is OpenSettings' error for an endpoint with credentials and
// no master key to open them.
var ErrNoMasterKey = errors.New("the endpoint has credentials, and this process has no master key to open them")

// OpenSettings returns the endpoint's settings with its credentials opened
// with box and laid over them: what its connector is opened with. The opened
// values live only in the returned map: never log, trace or publish it.
func (e Endpoint) OpenSettings(tenant string, box *secret.Box) (map[string]any, error) {
	if e.Credentials == "" {
		return e.Settings, nil
	}
	if box == nil {
		return nil, ErrNoMasterKey
	}
	b, err := box.Open(CredentialsBinding(tenant, e.Name), e.Credentials)
	if err != nil {
		return nil, fmt.Errorf("opening the credentials of endpoint %s of tenant %s: %w", e.Name, tenant, err)
	}
	var creds map[string]string
	if err := json.Unmarshal(b, &creds); err != nil {
		return nil, fmt.Errorf("endpoint %s of tenant %s: its stored credentials are damaged; apply them again", e.Name, tenant)
	}
	out := maps.Clone(e.Settings)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range creds {
		out[k] = v
	}
	return out, nil
}

// CredentialsBinding is what an endpoint's sealed credentials are bound to.
func CredentialsBinding(tenant, endpoint string) string {
	return "endpoint/" + tenant + "/" + endpoint
}

// Tenant is a tenant's entry in the bucket (key TenantKey): that the tenant
// exists, and what the data plane needs of its settings.
type Tenant struct {
	// Alerts is where the tenant's failure alerts go; nil sends none.
	Alerts *Alerts `json:"alerts,omitempty"`
	// RetentionDays is how long the tenant's API log and dead letters are
	// kept; 0 means the default (30 days).
	RetentionDays int `json:"retentionDays,omitempty"`
	// Egress is what the tenant's endpoints may reach beyond the platform's
	// egress policy, and the folder of its file-backed endpoints; nil: the
	// platform's policy alone.
	Egress *connector.TenantEgress `json:"egress,omitempty"`
}

// Alerts is a tenant's failure-alert webhook, compiled.
type Alerts struct {
	// Webhook is the http or https URL the eventlog POSTs alerts to.
	Webhook string `json:"webhook"`
	// Secret signs each alert (HMAC-SHA256). It is sealed with the master
	// key (pkg/secret), bound to AlertsBinding(tenant): never in the
	// bucket in the clear.
	Secret string `json:"secret"`
	// MinInterval is the shortest time between two alerts to the tenant
	// (nanoseconds in JSON); failures in between are grouped into the
	// next alert.
	MinInterval time.Duration `json:"minInterval"`
}

// AlertsBinding is what a tenant's sealed alert secret is bound to.
func AlertsBinding(tenant string) string {
	return "tenant/" + tenant + "/alerts"
}

// Integrator stages as the data plane sees them.
const (
	StageActive   = "active"   // map, dedup and push
	StageInactive = "inactive" // hold the flow's events until active again
	StageDeleted  = "deleted"  // refuse the flow's events, and log each
)

// Flow is one direction of sync for one entity type, compiled: endpoints
// resolved, mapping checked.
type Flow struct {
	Tenant     string `json:"tenant"`
	Name       string `json:"name"`
	Integrator string `json:"integrator"`
	// Generation increases with every change of the flow or of anything it
	// uses; events record the generation that mapped them.
	Generation int64        `json:"generation"`
	Entity     string       `json:"entity"`
	Source     Endpoint     `json:"source"`
	Target     Endpoint     `json:"target"`
	Mapping    mapping.Spec `json:"mapping"`
	// Duplicates is the duplicate policy: update, skip or error.
	Duplicates string `json:"duplicates"`
	// Stage is the integrator's stage: active, inactive or deleted.
	Stage string `json:"stage"`
	// KeyField is the source field whose value is a record's key (a global
	// code such as sku or ean); empty keeps the event's own key.
	KeyField string `json:"keyField,omitempty"`
	// Keyless is what happens to a record without a key: skip (logged) or
	// export (the event id becomes its key).
	Keyless string `json:"keyless,omitempty"`
	// WriteModes say per target field when it is written: always (the
	// default), create_only, update_only or if_empty.
	WriteModes map[string]connector.WriteMode `json:"writeModes,omitempty"`
	// Canonical: the target serves the flow's entity in its canonical
	// shape (pkg/entity), as its connector declares; the control plane sets
	// it. The mapper then checks every mapped record against the entity's
	// schema and dead-letters one that does not fit, before any call to
	// the target.
	Canonical bool `json:"canonical,omitempty"`
	// Document is what the document recipe does with the flow's documents (orders,
	// invoices, payments...) when its target reads them canonically; nil: the defaults.
	Document *Document `json:"document,omitempty"`
	// Schedule is when the flow's source is polled, for a source that is (the control
	// plane checked it); nil or mode realtime: its changes are published to Syncline.
	Schedule *poll.Spec `json:"schedule,omitempty"`
}

// Polled reports whether the flow's source is polled on a schedule.
func (f *Flow) Polled() bool {
	return f.Schedule != nil && (f.Schedule.Mode == poll.ModeInterval || f.Schedule.Mode == poll.ModeCron)
}

// Document is a document flow's policy (see pkg/recipe.Document).
type Document struct {
	// State is how far the target takes a document it writes, one of the states its
	// connector declares; empty: the target's default.
	State string `json:"state,omitempty"`
	// DefaultCustomer is the e-mail of the customer every order is booked on instead of
	// its own; empty: each order's own customer, found by e-mail or made.
	DefaultCustomer string `json:"defaultCustomer,omitempty"`
	// Types maps a source document type to the one the target takes (invoice: order).
	Types map[string]string `json:"types,omitempty"`
}

// Keyless policies.
const (
	KeylessSkip   = "skip"
	KeylessExport = "export"
)

// Key is the flow's key in the bucket.
func (f *Flow) Key() string { return Key(f.Tenant, f.Name) }

// Key returns the bucket key of a tenant's flow.
func Key(tenant, flow string) string { return "flow." + tenant + "." + flow }

// TenantKey returns the bucket key that marks a tenant as known.
func TenantKey(tenant string) string { return "tenant." + tenant }

// TokenKey returns the bucket key of a tenant's integrator token, by its
// hash. Its value is a Token. Only hashes are in the bucket, never tokens.
func TokenKey(tenant, hash string) string { return "token." + tenant + "." + hash }

// Token says whose an integrator token is.
type Token struct {
	Tenant     string `json:"tenant"`
	Integrator string `json:"integrator"`
}

// Encode serialises a flow for the bucket.
func Encode(f *Flow) ([]byte, error) {
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encoding flow %s/%s: %w", f.Tenant, f.Name, err)
	}
	return b, nil
}

// Decode parses a flow from the bucket.
func Decode(b []byte) (*Flow, error) {
	f := &Flow{}
	if err := json.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("decoding flow config: %w", err)
	}
	return f, nil
}
