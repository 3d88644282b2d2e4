package mapping

import "fmt"

// CompileError is one problem Compile found in a Spec. Compile returns one per problem,
// joined with errors.Join when there are several, so that a user fixes a mapping in one
// round instead of one error at a time.
type CompileError struct {
	// Path names the part of the spec: fields.<name>, filter, defaults.<name>,
	// valueMaps.<field>, validations[i].field or validations[i].check.
	Path string
	// Expr is the expression at Path, empty for parts that are not expressions.
	Expr string
	// Line and Column locate the problem in Expr, both 1-based. They are 0 when the problem
	// is not in an expression, or is not at one place in it.
	Line, Column int
	// Message says what is wrong and, where it is not obvious, what to do.
	Message string
}

// Error reads, for example, `fields.total: undeclared reference to 'sourc' (1:1) in "sourc.total"`.
func (e *CompileError) Error() string {
	msg := e.Path + ": " + e.Message
	if e.Line > 0 {
		msg += fmt.Sprintf(" (%d:%d)", e.Line, e.Column)
	}
	if e.Expr != "" {
		msg += fmt.Sprintf(" in %q", e.Expr)
	}
	return msg
}

// EvalError is a record that a compiled mapping could not map: an expression failed on it
// (a missing key, a bad conversion, the cost limit) or a value map had no entry for its
// value. Retrying will not fix it; fixing the mapping or the source record will.
type EvalError struct {
	// Path names the part of the spec that failed, as in CompileError.
	Path string
	// Message is the failure, for CEL errors CEL's own message.
	Message string
}

// Error reads, for example, "fields.total: no such key: total".
func (e *EvalError) Error() string { return e.Path + ": " + e.Message }

// ValidationError is a target record that failed one of the spec's validation rules. Apply
// returns one per failed rule, joined with errors.Join when several fail.
type ValidationError struct {
	// Field is the target field the rule checks.
	Field string
	// Value is the field's value, nil when the field is missing.
	Value any
	// Message is the rule's message.
	Message string
}

// Error names the field and the rule's message but leaves out the value: error texts end up
// in the API log, which never holds payload data (DESIGN section 6). Callers that may show
// the value read Value.
func (e *ValidationError) Error() string {
	return fmt.Sprintf("validation failed for field %q: %s", e.Field, e.Message)
}

// PayloadError is ApplyJSON's error for a payload that is not a JSON object:
// the record itself is malformed, whatever the mapping.
type PayloadError struct{ Err error }

func (e *PayloadError) Error() string { return e.Err.Error() }

func (e *PayloadError) Unwrap() error { return e.Err }
