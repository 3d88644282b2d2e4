// Package resource stores the declarative resources the control plane is given (tenants,
// integrators, endpoints, flows) as canonical JSON specs with a generation that counts real
// changes, so that re-applying the same file changes nothing and watchers can tell what moved.
package resource

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/sqlstore"
)

// Resource is one applied resource.
type Resource struct {
	Kind   string // "Tenant", "Integrator", "Endpoint", "Flow"
	Tenant string // the owning tenant; for Kind "Tenant" it equals Name
	Name   string
	// Spec is the resource's specification as canonical JSON: object keys sorted, no
	// insignificant white space, numbers as written. Put canonicalises what it is given.
	Spec json.RawMessage
	// Generation is 1 on create and grows by one on every change of Spec.
	Generation int64
	// CreatedAt and UpdatedAt are in UTC with microsecond precision, what both backends store.
	CreatedAt, UpdatedAt time.Time
}

// ErrNotFound is returned, wrapped in an error that names the kind, tenant and name, when a
// resource does not exist.
var ErrNotFound = errors.New("resource not found")

// Store holds resources.
type Store interface {
	// Put creates r or updates its Spec. A Spec identical to the stored one (as canonical JSON)
	// changes nothing and returns changed=false. stored is the resource as it now is.
	Put(ctx context.Context, r Resource) (stored Resource, changed bool, err error)
	// Get returns one resource, or an error wrapping ErrNotFound.
	Get(ctx context.Context, kind, tenant, name string) (Resource, error)
	// List returns the resources of a kind, of one tenant or, when tenant is empty, of all,
	// sorted by tenant and name.
	List(ctx context.Context, kind, tenant string) ([]Resource, error)
	// Delete removes one resource, or returns an error wrapping ErrNotFound.
	Delete(ctx context.Context, kind, tenant, name string) error
	// DeleteTenant removes a tenant's every resource (the Tenant itself too) and token, in one
	// transaction, and counts what it removed per kind ("token" for tokens). A tenant that does
	// not exist is an error wrapping ErrNotFound.
	DeleteTenant(ctx context.Context, tenant string) (removed map[string]int64, err error)

	// SetToken makes hash (auth.Hash of the token) the integrator's one token, replacing any
	// token it had.
	SetToken(ctx context.Context, tenant, integrator, hash string) error
	// DeleteToken removes the integrator's token; removed is false when it had none.
	DeleteToken(ctx context.Context, tenant, integrator string) (removed bool, err error)
	// LookupToken returns whose token hash is, or an error wrapping auth.ErrUnknownToken.
	LookupToken(ctx context.Context, hash string) (tenant, integrator string, err error)
	// Tokens returns a tenant's token hashes by integrator.
	Tokens(ctx context.Context, tenant string) (map[string]string, error)
}

// kindTenant is the kind whose resources are tenants themselves.
const kindTenant = "Tenant"

// migrationOwner is the resource store's name in schema_migrations.
const migrationOwner = "controlplane.resource"

//go:embed migrations
var migrationFiles embed.FS

// migrate brings the resource tables in db up to date.
func migrate(ctx context.Context, db *sqlstore.DB) error {
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("reading the resource store's embedded migrations: %w", err)
	}
	if err := db.Migrate(ctx, migrationOwner, files); err != nil {
		return fmt.Errorf("opening the resource store: %w", err)
	}
	return nil
}

// New migrates the resource tables in db and returns the store for db's dialect. ctx bounds
// the migration only.
func New(ctx context.Context, db *sqlstore.DB) (Store, error) {
	switch db.Dialect {
	case sqlstore.Postgres:
		return NewPostgres(ctx, db)
	case sqlstore.SQLite:
		return NewSQLite(ctx, db)
	default:
		return nil, fmt.Errorf("opening the resource store: unsupported database dialect %s", db.Dialect)
	}
}

func unknownToken() error {
	return fmt.Errorf("looking up a token: %w", auth.ErrUnknownToken)
}

func now() time.Time {
	return time.Now().UTC().Truncate(time.Microsecond)
}

// describe names a resource in messages.
func describe(kind, tenant, name string) string {
	if kind == kindTenant {
		return fmt.Sprintf("%s %q", kind, name)
	}
	return fmt.Sprintf("%s %q of tenant %q", kind, name, tenant)
}

func notFound(kind, tenant, name string) error {
	return fmt.Errorf("%s: %w", describe(kind, tenant, name), ErrNotFound)
}

// prepare validates r and returns its canonical spec.
func prepare(r Resource) (string, error) {
	switch {
	case r.Kind == "" || r.Tenant == "" || r.Name == "":
		return "", fmt.Errorf("storing %s: kind, tenant and name are all required", describe(r.Kind, r.Tenant, r.Name))
	case r.Kind == kindTenant && r.Tenant != r.Name:
		return "", fmt.Errorf("storing %s: a Tenant's tenant must equal its name, got %q", describe(r.Kind, r.Tenant, r.Name), r.Tenant)
	}
	spec, err := canonicalJSON(r.Spec)
	if err != nil {
		return "", fmt.Errorf("storing %s: the spec is not valid JSON: %w", describe(r.Kind, r.Tenant, r.Name), err)
	}
	return spec, nil
}

// canonicalJSON rewrites a JSON document with sorted object keys and no insignificant white
// space, so that two specs that mean the same compare equal as text. Numbers keep their
// written form (json.Number), so no precision is lost.
func canonicalJSON(raw json.RawMessage) (string, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return "", errors.New("it is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", errors.New("it holds more than one JSON value")
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(out.Bytes(), []byte("\n"))), nil
}

// validateList refuses a listing without a kind: resources of different kinds do not belong
// in one list.
func validateList(kind string) error {
	if kind == "" {
		return errors.New("listing resources: the kind is required (Tenant, Integrator, Endpoint or Flow)")
	}
	return nil
}
