package controlplane

import (
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/services/controlplane/resource"
)

// Stable reasons, carried in the ErrorDetail of every error the control
// plane makes. Authentication and permission errors come from pkg/auth with
// their connect codes (Unauthenticated, PermissionDenied) alone.
const (
	ReasonInvalid         = "INVALID_RESOURCE"
	ReasonReference       = "REFERENCE_MISSING"
	ReasonEndpointInUse   = "ENDPOINT_IN_USE"
	ReasonNameImmutable   = "NAME_IMMUTABLE"
	ReasonStageTransition = "STAGE_TRANSITION"
	ReasonNotFound        = "NOT_FOUND"
	ReasonNoMasterKey     = "NO_MASTER_KEY"
	ReasonEgress          = "EGRESS_REFUSED"
	ReasonInternal        = "INTERNAL"
	ReasonUnavailable     = "UNAVAILABLE"
)

// fieldError is a problem with one field of a resource's spec.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string {
	if strings.HasPrefix(e.msg, e.field) {
		return e.msg
	}
	return e.field + " " + e.msg
}

func fieldErr(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// apiError returns a connect error with an ErrorDetail: the stable reason,
// the resource ("Flow acme/orders"), the field when err names one, and what
// to do.
func apiError(code connect.Code, reason, res, hint string, err error) *connect.Error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	detail := &controlplanev1.ErrorDetail{Reason: reason, Resource: res, Hint: hint}
	var fe *fieldError
	if errors.As(err, &fe) {
		detail.Field = fe.field
	}
	msg := err
	if res != "" {
		msg = fmt.Errorf("%s: %w", res, err)
	}
	if hint != "" {
		msg = fmt.Errorf("%w (%s)", msg, hint)
	}
	out := connect.NewError(code, msg)
	if d, derr := connect.NewErrorDetail(detail); derr == nil {
		out.AddDetail(d)
	}
	return out
}

// storeError maps a store error: not found is the caller's, the rest ours.
func storeError(res string, err error) *connect.Error {
	if errors.Is(err, resource.ErrNotFound) {
		return apiError(connect.CodeNotFound, ReasonNotFound, res, "check the name and tenant with `syncline get`", err)
	}
	return apiError(connect.CodeInternal, ReasonInternal, res, "", err)
}

// name names a resource in messages: "Flow acme/orders", "Tenant acme".
func name(kind, tenant, n string) string {
	if kind == KindTenant {
		return kind + " " + n
	}
	return kind + " " + tenant + "/" + n
}
