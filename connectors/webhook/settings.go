// Package webhook is the `webhook` source: a system that POSTs its changes to
// Syncline, at /hooks/<tenant>/<endpoint>/<entity>, signed with the
// endpoint's secret (or carrying it as a token). Nothing is polled; the
// connector service receives the request, checks it with Read and publishes
// its records to the ingest stream before it answers.
package webhook

import (
	"errors"
	"fmt"
	"time"

	"github.com/syncline/syncline/pkg/connector"
)

// Type is the connector type name endpoints use for this source.
const Type = "webhook"

// The ways a sender proves it holds the endpoint's secret.
const (
	// AuthHMAC: the request is signed (Sign) with the secret, with a time.
	AuthHMAC = "hmac"
	// AuthToken: the request carries the secret itself.
	AuthToken = "token"
)

// The shapes a request's body may have.
const (
	// BodyObject: the body is one record, a JSON object.
	BodyObject = "object"
	// BodyArray: the body is a JSON array of records, stored together.
	BodyArray = "array"
)

// Bounds and defaults of the settings.
const (
	DefaultMaxBody = 1 << 20
	// MaxBody is the most any endpoint may take in one request: the ingest
	// API's limit, for the same reason (a request is held in memory whole).
	MaxBody               = 8 << 20
	DefaultWindow         = 5 * time.Minute
	MinWindow             = time.Second
	MaxWindow             = time.Hour
	DefaultKeyField       = "id"
	DefaultDeliveryHeader = "X-Syncline-Delivery"
)

const (
	// fieldPathPattern is a dotted path of JSON field names.
	fieldPathPattern = `[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*`
	// headerNamePattern is an HTTP header name (RFC 9110's token).
	headerNamePattern = "[!#$%&'*+.^_`|~0-9A-Za-z-]+"
)

// Settings configure one webhook endpoint. See spec for what each means.
type Settings struct {
	Auth string
	// Secret is the HMAC key (auth hmac) or the token (auth token): a
	// credential. Never log or trace it.
	Secret string
	// Window is how far a signed request's timestamp may be from the
	// receiver's clock, either way.
	Window time.Duration
	// MaxBody bounds a request's body, in bytes.
	MaxBody int64
	Body    string
	// KeyField and VersionField are dotted paths into a record; an empty
	// VersionField leaves each record's version to the time it is stored.
	KeyField, VersionField string
	// DeliveryHeader names the header that carries the sender's delivery id.
	DeliveryHeader string
}

// spec is the single source of truth for the settings: Register hands it to
// the registry (whose Check runs check, so a bad endpoint is refused when it is
// applied), and Parse reads settings the registry validated.
func spec() connector.Spec {
	return connector.Spec{
		Type: Type,
		Kind: connector.KindSource,
		Summary: "A system that POSTs its changes to /hooks/<tenant>/<endpoint>/<entity>, signed with the endpoint's secret " +
			"(HMAC-SHA256, as Syncline signs its alerts) or carrying it as a token; answered only once the records are stored.",
		Check: check,
		Fields: []connector.Field{
			{Name: "auth", Type: connector.TypeString, Default: AuthHMAC, Enum: []string{AuthHMAC, AuthToken},
				Summary: "how a sender proves it holds the secret: hmac (X-Syncline-Signature over the delivery id, X-Syncline-Timestamp and the raw body) or token (the secret itself in X-Syncline-Token or Authorization: Bearer)"},
			{Name: "secret", Type: connector.TypeString, Required: true, Secret: true, Credential: true,
				Summary: "the HMAC key (auth hmac) or the token (auth token), at least 32 random characters: a credential, given under spec.credentials"},
			{Name: "timestamp_window", Type: connector.TypeDuration, Default: DefaultWindow.String(),
				Summary: "how far a signed request's X-Syncline-Timestamp may be from the receiver's clock, either way, from 1s to 1h (auth hmac)"},
			{Name: "max_body_bytes", Type: connector.TypeInt, Default: DefaultMaxBody,
				Summary: "the largest body a request may have, in bytes, at most 8 MiB (8388608); a larger one is refused with 413 unread"},
			{Name: "body", Type: connector.TypeString, Default: BodyObject, Enum: []string{BodyObject, BodyArray},
				Summary: "what a request's body is: object (one record) or array (a JSON array of records, stored together)"},
			{Name: "key_field", Type: connector.TypeString, Default: DefaultKeyField, Pattern: fieldPathPattern,
				Summary: "the record field that holds its key in the sender's system, as a dotted path (id, order.number): a string or a whole number"},
			{Name: "version_field", Type: connector.TypeString, Pattern: fieldPathPattern,
				Summary: "the record field that orders its changes, as a dotted path: a whole number (a sequence) or an RFC 3339 time (an updated-at); empty: the time the record is stored"},
			{Name: "delivery_header", Type: connector.TypeString, Default: DefaultDeliveryHeader, Pattern: headerNamePattern,
				Summary: "the header that carries the sender's delivery id, the same on every retry of a delivery"},
		},
	}
}

// Register registers the "webhook" source. It is not polled: its endpoints'
// changes arrive at the connector service's /hooks/ receiver.
func Register(r *connector.Registry) error {
	return r.RegisterSource(spec())
}

// check is the spec's Check: the bounds of the numbers.
func check(m map[string]any) error {
	var errs []error
	if w, _ := m["timestamp_window"].(time.Duration); w < MinWindow || w > MaxWindow {
		errs = append(errs, &connector.SettingsError{Path: "settings.timestamp_window",
			Reason: fmt.Sprintf("%s is outside 1s to 1h: give a window that covers the clocks' drift and the sender's delay, such as 5m", w)})
	}
	if n, _ := m["max_body_bytes"].(int64); n < 1 || n > MaxBody {
		errs = append(errs, &connector.SettingsError{Path: "settings.max_body_bytes",
			Reason: fmt.Sprintf("%d is outside 1 to %d (8 MiB): a body larger than that is held in memory whole, so send large batches as several requests", n, MaxBody)})
	}
	return errors.Join(errs...)
}

// Open validates an endpoint's opened settings (credentials laid over, as
// flowconfig.Endpoint.OpenSettings returns them) against the registry r and
// reads them. Every problem is a *connector.SettingsError naming its setting.
func Open(r *connector.Registry, settings map[string]any) (Settings, error) {
	valid, err := r.ValidateSettings(Type, settings)
	if err != nil {
		return Settings{}, err
	}
	return parse(valid), nil
}

// parse reads settings the registry validated: defaults filled in, types
// right, check passed.
func parse(m map[string]any) Settings {
	var s Settings
	s.Auth, _ = m["auth"].(string)
	s.Secret, _ = m["secret"].(string)
	s.Window, _ = m["timestamp_window"].(time.Duration)
	s.MaxBody, _ = m["max_body_bytes"].(int64)
	s.Body, _ = m["body"].(string)
	s.KeyField, _ = m["key_field"].(string)
	s.VersionField, _ = m["version_field"].(string)
	s.DeliveryHeader, _ = m["delivery_header"].(string)
	return s
}
