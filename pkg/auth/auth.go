// Package auth authenticates and authorises API calls (DESIGN section 6).
// Every RPC carries a bearer token: the operators' admin token, which may do
// anything, or an integrator token, which sees and changes its own tenant
// only. Integrator tokens are random, prefixed, shown once when they are made
// and stored only as their SHA-256 hash; a TokenLookup finds the tenant and
// integrator a hash belongs to.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"connectrpc.com/connect"
)

// Token prefixes, so that a leaked token is recognisable (and findable by
// secret scanners).
const (
	AdminPrefix      = "sla_"
	IntegratorPrefix = "sli_"
)

// ErrUnknownToken is what a TokenLookup returns for a hash it does not hold.
var ErrUnknownToken = errors.New("unknown token")

// Principal is who makes a call.
type Principal struct {
	// Admin is the operators' token: every tenant.
	Admin bool
	// Tenant and Integrator name the integrator whose token it is.
	Tenant, Integrator string
}

// String names the principal in messages and logs (never the token).
func (p Principal) String() string {
	if p.Admin {
		return "the admin token"
	}
	return fmt.Sprintf("the token of integrator %q of tenant %q", p.Integrator, p.Tenant)
}

// TokenLookup finds whose an integrator token is, by its hash (Hash). It
// returns ErrUnknownToken for a hash it does not hold: a token never
// issued, rotated away or revoked.
type TokenLookup interface {
	LookupToken(ctx context.Context, hash string) (tenant, integrator string, err error)
}

// NewAdminToken returns a random admin token (256 bits).
func NewAdminToken() (string, error) {
	return newToken(AdminPrefix)
}

// NewIntegratorToken returns a random integrator token (256 bits) and the
// hash to store in its place.
func NewIntegratorToken() (token, hash string, err error) {
	token, err = newToken(IntegratorPrefix)
	if err != nil {
		return "", "", err
	}
	return token, Hash(token), nil
}

func newToken(prefix string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a token: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// Hash is what is stored of an integrator token: hex SHA-256. The tokens
// carry 256 random bits, so a fast hash is as safe as a slow one.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p; the Authenticator's Handler does this
// for every request it lets through.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller. ok is false outside an authenticated call.
func FromContext(ctx context.Context) (p Principal, ok bool) {
	p, ok = ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Tenant checks that the caller may see and change tenant and returns it.
// An empty tenant means "every tenant" for the admin token and "my tenant"
// for an integrator token. A tenant not the caller's is PermissionDenied,
// and the message does not say whether that tenant exists.
func Tenant(ctx context.Context, tenant string) (string, error) {
	p, ok := FromContext(ctx)
	switch {
	case !ok:
		return "", connect.NewError(connect.CodeUnauthenticated, errors.New("the call is not authenticated"))
	case p.Admin:
		return tenant, nil
	case tenant == "" || tenant == p.Tenant:
		return p.Tenant, nil
	default:
		return "", connect.NewError(connect.CodePermissionDenied,
			fmt.Errorf("tenant %q is not yours: %s may only use tenant %q", tenant, p, p.Tenant))
	}
}

// Admin checks that the caller holds the admin token.
func Admin(ctx context.Context, what string) error {
	p, ok := FromContext(ctx)
	switch {
	case !ok:
		return connect.NewError(connect.CodeUnauthenticated, errors.New("the call is not authenticated"))
	case !p.Admin:
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s needs the admin token, not %s", what, p))
	}
	return nil
}

// Authenticator checks the bearer token of API calls: the admin token, or an
// integrator token that its TokenLookup knows.
type Authenticator struct {
	admin  []byte
	tokens TokenLookup
}

// NewAuthenticator returns the token check for adminToken and the integrator
// tokens that tokens knows. tokens may be nil: then only the admin token
// works. The admin comparison takes constant time; integrator tokens are
// looked up by hash.
func NewAuthenticator(adminToken string, tokens TokenLookup) (*Authenticator, error) {
	if len(adminToken) < 16 {
		return nil, errors.New("admin token is shorter than 16 characters: set a long random token")
	}
	return &Authenticator{admin: []byte(adminToken), tokens: tokens}, nil
}

// Handler refuses every request to next that carries neither the admin
// token nor a known integrator token, as "Authorization: Bearer <token>",
// and puts the caller's Principal in the context of every request it lets
// through. It decides from the header alone, before anything reads the
// body: connect interceptors run only after a request is decoded, so a
// caller without a token could otherwise make the server read and decode
// whatever it sends. A refusal is written in the request's own protocol
// (connect, gRPC or gRPC-Web), as connect would write it. The body stays
// unread: net/http closes the connection rather than drain a large one.
func (a *Authenticator) Handler(next http.Handler) http.Handler {
	errs := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.authenticate(r.Context(), r.Header.Get("Authorization"))
		if err != nil {
			if errs.IsSupported(r) {
				_ = errs.Write(w, r, err)
				return
			}
			http.Error(w, err.Error(), httpStatus(err))
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// httpStatus is the status of a refusal to a request in no RPC protocol.
func httpStatus(err error) int {
	if connect.CodeOf(err) == connect.CodeUnavailable {
		return http.StatusServiceUnavailable
	}
	return http.StatusUnauthorized
}

func (a *Authenticator) authenticate(ctx context.Context, header string) (Principal, error) {
	got, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || got == "" {
		return Principal{}, connect.NewError(connect.CodeUnauthenticated,
			errors.New("no token: send \"Authorization: Bearer <token>\" (syncline dev prints the admin token; an integrator's token is shown when it is created)"))
	}
	p, err := Identify(ctx, string(a.admin), a.tokens, got)
	switch {
	case err == nil:
		return p, nil
	case errors.Is(err, ErrUnknownToken):
		return Principal{}, connect.NewError(connect.CodeUnauthenticated, err)
	}
	return Principal{}, connect.NewError(connect.CodeUnavailable, err)
}

// Identify says whose token is: the admin token's (adminToken, compared in
// constant time) or an integrator's that tokens (nil: none) knows. A token
// that is neither is an error wrapping ErrUnknownToken; any other error is
// the lookup's.
func Identify(ctx context.Context, adminToken string, tokens TokenLookup, token string) (Principal, error) {
	if subtle.ConstantTimeCompare([]byte(token), []byte(adminToken)) == 1 {
		return Principal{Admin: true}, nil
	}
	if tokens != nil && strings.HasPrefix(token, IntegratorPrefix) {
		tenant, integrator, err := tokens.LookupToken(ctx, Hash(token))
		switch {
		case err == nil:
			return Principal{Tenant: tenant, Integrator: integrator}, nil
		case !errors.Is(err, ErrUnknownToken):
			return Principal{}, fmt.Errorf("checking the token: %w", err)
		}
	}
	return Principal{}, notRecognised{}
}

// notRecognised is Identify's refusal: it is ErrUnknownToken, said for the
// token's holder.
type notRecognised struct{}

func (notRecognised) Error() string {
	return "token not recognised (never issued, rotated or revoked): check the token you were given"
}

func (notRecognised) Is(target error) bool { return target == ErrUnknownToken }

// Bearer is the client side: it sends token as "Authorization: Bearer
// <token>" on every call.
func Bearer(token string) connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	})
}
