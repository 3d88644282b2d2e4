package console

import (
	"errors"

	"connectrpc.com/connect"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
)

// refusal is an API's refusal as a form shows it: the message, and the field it names (a
// path in the resource, such as "spec.settings.dsn" or "metadata.name"), so the page shows
// it next to that field; Field is empty when the refusal names none.
type refusal struct {
	Field, Message, Hint, Reason string
}

// refusalOf reads an API error.
func refusalOf(err error) refusal {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return refusal{Message: err.Error()}
	}
	r := refusal{Message: ce.Message()}
	for _, d := range ce.Details() {
		v, derr := d.Value()
		if derr != nil {
			continue
		}
		if ed, ok := v.(*controlplanev1.ErrorDetail); ok {
			r.Field, r.Hint, r.Reason = ed.Field, ed.Hint, ed.Reason
		}
	}
	return r
}

// formErrors puts a refusal on page p: next to its field when the form has one of that
// name (fields lists the form's field names, as the API names them), else at the top.
func (p *page) formErrors(err error, fields ...string) {
	r := refusalOf(err)
	for _, f := range fields {
		if r.Field == f || len(r.Field) > len(f) && r.Field[:len(f)+1] == f+"." {
			if p.FieldErrors == nil {
				p.FieldErrors = map[string]string{}
			}
			p.FieldErrors[f] = r.Message
			return
		}
	}
	p.Error = r.Message
}
