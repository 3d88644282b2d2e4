// Package auth authenticates API calls. Every RPC carries a bearer token;
// this build knows the operators' admin token (integrator tokens scoped to
// one tenant are the control plane's next step).
package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
)

// AdminPrefix starts every admin token, so a leaked one is recognisable.
const AdminPrefix = "sla_"

// NewAdminToken returns a random admin token (256 bits).
func NewAdminToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating admin token: %w", err)
	}
	return AdminPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// NewInterceptor refuses every call that does not carry the admin token as
// "Authorization: Bearer <token>". The comparison takes constant time.
func NewInterceptor(adminToken string) (connect.Interceptor, error) {
	if len(adminToken) < 16 {
		return nil, errors.New("admin token is shorter than 16 characters: set a long random token")
	}
	want := []byte(adminToken)
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			got, ok := strings.CutPrefix(req.Header().Get("Authorization"), "Bearer ")
			if !ok || got == "" {
				return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("no token: send \"Authorization: Bearer <token>\" (syncline dev prints the admin token)"))
			}
			if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
				return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("token not recognised: check the token you were given"))
			}
			return next(ctx, req)
		}
	}), nil
}

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
