package controlplane

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/mapping"
	"github.com/syncline/syncline/pkg/poll"
	"github.com/syncline/syncline/pkg/recipe"
	"github.com/syncline/syncline/pkg/resourcefile"
)

// APIVersion is the resource files' apiVersion.
const APIVersion = resourcefile.APIVersion

// Kinds, in the order Apply applies them: what a resource refers to is
// applied before it.
const (
	KindTenant     = "Tenant"
	KindIntegrator = "Integrator"
	KindEndpoint   = "Endpoint"
	KindFlow       = "Flow"
)

var kindOrder = map[string]int{KindTenant: 0, KindIntegrator: 1, KindEndpoint: 2, KindFlow: 3}

// TenantSpec is a tenant's spec.
type TenantSpec struct {
	DisplayName string `json:"displayName,omitempty"`
	// RetentionDays is how long the tenant's API log records and dead
	// letters are kept: 1 to 3650 days; left out, 30.
	RetentionDays int `json:"retentionDays,omitempty"`
	// Alerts send the tenant's failures to a webhook; nil sends none.
	Alerts *AlertsSpec `json:"alerts,omitempty"`
	// Egress is what the tenant's endpoints may reach on top of the
	// platform's egress policy (allow: rules as in SYNCLINE_EGRESS_ALLOW),
	// and the folder of its file-backed endpoints instead of
	// <SYNCLINE_EGRESS_FILES>/<tenant> (folder: an absolute path). Only the
	// admin token changes a tenant, so only the operator sets it.
	Egress *connector.TenantEgress `json:"egress,omitempty"`
}

// AlertsSpec is where a tenant's failure alerts go and how often.
type AlertsSpec struct {
	// Webhook is the http or https URL alerts are POSTed to.
	Webhook string `json:"webhook"`
	// Secret signs every alert (HMAC-SHA256 of the body, header
	// X-Syncline-Signature), so the receiver can tell it came from
	// Syncline. Write-only, like an endpoint's credentials: stored
	// encrypted under the master key, bound to the tenant, never returned,
	// logged or traced; reading the tenant shows "(secret)", which an apply
	// reads as "keep the stored value", as it reads a secret left out.
	Secret string `json:"secret,omitempty"`
	// SealedSecret is what the store keeps of the secret: set by the
	// server, never given or returned.
	SealedSecret string `json:"sealedSecret,omitempty"`
	// MinInterval is the shortest time between two alerts to the tenant,
	// e.g. "30s" (the default; 1s to 24h). The first failure after a quiet
	// spell is alerted within about a second; failures that follow are
	// grouped, counted and sampled into the next alert.
	MinInterval string `json:"minInterval,omitempty"`
}

// Alert intervals.
const (
	DefaultAlertInterval = 30 * time.Second
	minAlertInterval     = time.Second
	maxAlertInterval     = 24 * time.Hour
	// minAlertSecret is the shortest secret: an HMAC key a receiver's
	// attacker cannot guess.
	minAlertSecret = 16
)

func (s *TenantSpec) check() error {
	if s.RetentionDays < 0 || s.RetentionDays > 3650 {
		return fieldErr("spec.retentionDays", "%d: keep the API log and dead letters 1 to 3650 days (left out: 30)", s.RetentionDays)
	}
	if e := s.Egress; e != nil {
		for i, r := range e.Allow {
			if err := connector.CheckEgressRule(r); err != nil {
				return fieldErr(fmt.Sprintf("spec.egress.allow[%d]", i), "%v", err)
			}
		}
		if e.Folder != "" && (!filepath.IsAbs(e.Folder) || filepath.Clean(e.Folder) != e.Folder) {
			return fieldErr("spec.egress.folder", "%q: give the folder as a clean absolute path, e.g. /srv/syncline/acme", e.Folder)
		}
	}
	a := s.Alerts
	if a == nil {
		return nil
	}
	if a.Webhook == "" {
		return fieldErr("spec.alerts.webhook", "is required: the http or https URL that receives the tenant's failure alerts")
	}
	u, err := url.Parse(a.Webhook)
	switch {
	case err != nil:
		return fieldErr("spec.alerts.webhook", "%q is not a URL: %v", a.Webhook, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fieldErr("spec.alerts.webhook", "%q: use an http:// or https:// URL", a.Webhook)
	case u.Host == "":
		return fieldErr("spec.alerts.webhook", "%q has no host", a.Webhook)
	case u.User != nil:
		// The URL is shown by get and in log lines; a password in it
		// would be too.
		return fieldErr("spec.alerts.webhook", "carries a user or password, which get and the logs would show: alerts are authenticated by their signature with spec.alerts.secret")
	}
	if a.Secret != "" && a.Secret != Secret && len(a.Secret) < minAlertSecret {
		return fieldErr("spec.alerts.secret", "is %d characters: use at least %d random ones (`head -c24 /dev/urandom | base64`)", len(a.Secret), minAlertSecret)
	}
	if a.SealedSecret != "" {
		return fieldErr("spec.alerts.sealedSecret", "is the server's: give the secret in the clear under spec.alerts.secret (over TLS), and the server encrypts it")
	}
	if _, err := a.interval(); err != nil {
		return err
	}
	return nil
}

// interval is the alerts' minimum interval, defaulted.
func (a *AlertsSpec) interval() (time.Duration, error) {
	if a.MinInterval == "" {
		return DefaultAlertInterval, nil
	}
	d, err := time.ParseDuration(a.MinInterval)
	if err != nil {
		return 0, fieldErr("spec.alerts.minInterval", "%q is not a duration: use e.g. 30s or 5m", a.MinInterval)
	}
	if d < minAlertInterval || d > maxAlertInterval {
		return 0, fieldErr("spec.alerts.minInterval", "%s: use 1s to 24h", a.MinInterval)
	}
	return d, nil
}

// Integrator stages are flowconfig's (DESIGN section 1): active runs the
// integrator's flows; inactive holds their events, nothing dropped and
// nothing pushed, until it is active again; deleted is final: events for it
// are refused and logged.
const (
	StageActive   = flowconfig.StageActive
	StageInactive = flowconfig.StageInactive
	StageDeleted  = flowconfig.StageDeleted
)

// IntegratorSpec is an integrator's spec.
type IntegratorSpec struct {
	// Stage is active (the default), inactive or deleted. Active and
	// inactive change into each other; either changes into deleted, and
	// deleted into nothing.
	Stage string `json:"stage,omitempty"`
}

// EndpointSpec is an endpoint's spec.
type EndpointSpec struct {
	Type string `json:"type"`
	// Description is required: what system this is.
	Description string         `json:"description"`
	Settings    map[string]any `json:"settings,omitempty"`
	// Credentials are the connector's secret settings (passwords, API
	// tokens). They are write-only: stored encrypted (AES-GCM, bound to the
	// tenant and endpoint), never returned, logged or traced. Reading an
	// endpoint shows only which credentials are set.
	Credentials map[string]string `json:"credentials,omitempty"`
	// SealedCredentials is what the store keeps of the credentials: set by
	// the server, never given or returned. The stored Credentials hold the
	// names only, each with the value "(secret)".
	SealedCredentials string `json:"sealedCredentials,omitempty"`
}

// FlowSpec is a flow's spec.
type FlowSpec struct {
	Integrator string       `json:"integrator"`
	Source     string       `json:"source"`
	Target     string       `json:"target"`
	Entity     string       `json:"entity"`
	Mapping    mapping.Spec `json:"mapping"`
	// Duplicates is what happens when a record that already exists in the
	// target changes: update, skip or error. Orders and other documents
	// default to skip (a document in the target is not rewritten), other
	// entities to update.
	Duplicates string `json:"duplicates,omitempty"`
	// KeyField is the source field that identifies a record, as a dotted
	// path ("sku", "product.ean"): a global code shared by the systems.
	// Empty uses the event's key, the source system's own local code.
	KeyField string `json:"keyField,omitempty"`
	// Keyless is what happens to a record whose KeyField is missing or
	// empty: skip (the default; logged with the reason) or export (the
	// record is a new one, keyed by its event id).
	Keyless string `json:"keyless,omitempty"`
	// WriteModes say per target field when the connector writes it: always
	// (the default), create_only, update_only or if_empty, so that data
	// enriched in the target is not overwritten.
	WriteModes map[string]connector.WriteMode `json:"writeModes,omitempty"`
	// Schedule is when the flow reads its source: realtime (the default;
	// events are pushed), or, for sources that are polled, every an
	// interval or on a cron schedule.
	Schedule *Schedule `json:"schedule,omitempty"`
	// Document is what happens to the flow's documents (orders, invoices,
	// payments and the other document types) in a target that reads them in
	// their canonical shape; only document flows may set it.
	Document *DocumentSpec `json:"document,omitempty"`
}

// DocumentSpec is a document flow's policy.
type DocumentSpec struct {
	// State is how far the target takes a document it writes, one of the
	// states its connector declares (Tryton's sales: draft, quotation,
	// confirmed); empty: the target's default, its first.
	State string `json:"state,omitempty"`
	// DefaultCustomer is the e-mail of the customer, already in the target,
	// that every order is booked on instead of its own customer (a cash
	// sales debtor, say). Empty: each order's customer is found by e-mail and
	// made or updated.
	DefaultCustomer string `json:"defaultCustomer,omitempty"`
	// Types maps a source document type onto one the target takes, e.g.
	// invoice: order for a target that takes orders only.
	Types map[string]string `json:"types,omitempty"`
}

// Schedule is when a flow reads its source: mode realtime (the default: the source
// publishes its changes, through NATS, the ingest API or a webhook), interval (every
// Every) or cron (Cron, in Timezone), for a source endpoint whose connector is polled
// (pkg/poll).
type Schedule = poll.Spec

var keyFieldPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

var emailPattern = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)

// orderTypes are the source document types an order may have (pkg/entity).
var orderTypes = []string{"order", "invoice"}

// decodeStrict decodes a spec, refusing fields the kind does not have: a
// misspelt field silently ignored is a flow that does something else.
func decodeStrict(spec []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	return nil
}

func (s *IntegratorSpec) check() error {
	switch s.Stage {
	case "":
		s.Stage = StageActive
	case StageActive, StageInactive, StageDeleted:
	default:
		return fieldErr("spec.stage", "%q is not a stage: use active, inactive or deleted", s.Stage)
	}
	return nil
}

// checkTransition refuses a stage change the integrator cannot make.
func checkTransition(from, to string) error {
	switch {
	case from == to:
		return nil
	case from == StageDeleted:
		return fieldErr("spec.stage", "the integrator is deleted, which is final: it cannot become %s; create a new integrator", to)
	}
	return nil
}

func (s *EndpointSpec) check() error {
	if s.Type == "" {
		return fieldErr("spec.type", "is required: the connector type, e.g. sql or nats")
	}
	if s.Description == "" {
		return fieldErr("spec.description", "is required: say what system this endpoint is")
	}
	if s.SealedCredentials != "" {
		return fieldErr("spec.sealedCredentials", "is the server's: give credentials in the clear under spec.credentials (over TLS), and the server encrypts them")
	}
	return nil
}

func (s *FlowSpec) check() error {
	for _, f := range []struct{ path, v string }{
		{"spec.integrator", s.Integrator}, {"spec.source", s.Source}, {"spec.target", s.Target}, {"spec.entity", s.Entity},
	} {
		if err := bus.ValidateToken(f.path, f.v); err != nil {
			return fieldErr(f.path, "%v", err)
		}
	}
	if s.Source == s.Target {
		return fieldErr("spec.target", "is the source too (%q): a flow moves records between two endpoints", s.Source)
	}
	switch s.Duplicates {
	case "":
		s.Duplicates = flowconfig.DuplicateUpdate
		if recipe.IsDocument(s.Entity) {
			s.Duplicates = flowconfig.DuplicateSkip
		}
	case flowconfig.DuplicateUpdate, flowconfig.DuplicateSkip, flowconfig.DuplicateError:
	default:
		return fieldErr("spec.duplicates", "%q: use update, skip or error", s.Duplicates)
	}
	if s.KeyField != "" && !keyFieldPattern.MatchString(s.KeyField) {
		return fieldErr("spec.keyField", "%q: give a field of the source record as a dotted path, e.g. sku or product.ean", s.KeyField)
	}
	switch s.Keyless {
	case "":
		s.Keyless = flowconfig.KeylessSkip
	case flowconfig.KeylessSkip, flowconfig.KeylessExport:
	default:
		return fieldErr("spec.keyless", "%q: use skip (log and skip records without a key) or export", s.Keyless)
	}
	for field, mode := range s.WriteModes {
		switch mode {
		case connector.WriteAlways, connector.WriteCreateOnly, connector.WriteUpdateOnly, connector.WriteIfEmpty:
		default:
			return fieldErr("spec.writeModes."+field, "%q: use always, create_only, update_only or if_empty", mode)
		}
	}
	if err := checkSchedule(s.Schedule); err != nil {
		return err
	}
	if err := s.Document.check(s.Entity); err != nil {
		return err
	}
	// The mapping runs over the entity's flat or canonical default, as the target
	// reads it, which compiling the flow finds out: here it must compile over one.
	if _, err := mapping.Compile(s.effectiveMapping(false)); err != nil {
		if _, errCanonical := mapping.Compile(s.effectiveMapping(true)); errCanonical != nil {
			return fieldErr("spec.mapping", "%v", err)
		}
	}
	return nil
}

// effectiveMapping is the mapping the flow runs: its entity's default
// mapping, overridden by the flow's own. canonical says the target reads
// the entity's canonical shape, whose default it then is (an order's
// differs from the flat one a table takes).
func (s *FlowSpec) effectiveMapping(canonical bool) mapping.Spec {
	def, ok := mapping.Default(s.Entity)
	if canonical || !ok {
		// A document type has no flat default: its canonical one is as good a
		// start as any for a table.
		def, ok = mapping.CanonicalDefault(s.Entity)
	}
	if ok {
		return mapping.Merge(def, s.Mapping)
	}
	return s.Mapping
}

func (d *DocumentSpec) check(entity string) error {
	if d == nil {
		return nil
	}
	if !recipe.IsDocument(entity) {
		return fieldErr("spec.document", "applies to document flows (%s), and this flow's entity is %s: leave it out", strings.Join(recipe.Documents(), ", "), entity)
	}
	// A state is a word its target declares; the check against the target's names them.
	if d.State != "" {
		if err := bus.ValidateToken("spec.document.state", d.State); err != nil {
			return fieldErr("spec.document.state", "%v", err)
		}
	}
	if len(d.DefaultCustomer) > 254 {
		return fieldErr("spec.document.defaultCustomer", "is %d characters long; an e-mail address has at most 254", len(d.DefaultCustomer))
	}
	if d.DefaultCustomer != "" {
		if entity != "order" {
			return fieldErr("spec.document.defaultCustomer", "applies to orders, and this flow's entity is %s: leave it out", entity)
		}
		if !emailPattern.MatchString(d.DefaultCustomer) {
			return fieldErr("spec.document.defaultCustomer", "%q is not an e-mail address: give the e-mail of the customer in the target that orders are booked on", d.DefaultCustomer)
		}
	}
	if len(d.Types) > 0 && entity != "order" {
		return fieldErr("spec.document.types", "applies to orders, and this flow's entity is %s: leave it out", entity)
	}
	for _, from := range slices.Sorted(maps.Keys(d.Types)) {
		if !slices.Contains(orderTypes, from) {
			return fieldErr("spec.document.types."+from, "%q is not a type an order has: use %s", from, strings.Join(orderTypes, " or "))
		}
		if to := d.Types[from]; !slices.Contains(orderTypes, to) {
			return fieldErr("spec.document.types."+from, "%q is not a type an order has: use %s", to, strings.Join(orderTypes, " or "))
		}
	}
	return nil
}

func checkSchedule(s *Schedule) error {
	if s == nil {
		return nil
	}
	switch s.Mode {
	case poll.ModeRealtime:
		if s.Every != "" || s.Cron != "" || s.Timezone != "" || s.Jitter != "" || s.Overrun != "" {
			return fieldErr("spec.schedule", "a realtime schedule has no every, cron, timezone, jitter or overrun: the source publishes its changes")
		}
	case poll.ModeInterval, poll.ModeCron:
		if _, err := poll.Parse(*s); err != nil {
			var fe *poll.FieldError
			if errors.As(err, &fe) {
				return fieldErr("spec.schedule."+fe.Field, "%s", fe.Reason)
			}
			return fieldErr("spec.schedule", "%v", err)
		}
	default:
		return fieldErr("spec.schedule.mode", "%q: use realtime, interval or cron", s.Mode)
	}
	return nil
}
