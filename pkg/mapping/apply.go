package mapping

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// Result is the outcome of mapping one record.
type Result struct {
	// Record is the target record. It is read-only: it may share nested lists and maps with
	// the source record and with the mapping's defaults.
	Record map[string]any
	// Skipped is true when the filter rejected the record; Record is then nil.
	Skipped bool
	// Reason says why a record was skipped, for the API log.
	Reason string
}

// slot holds one target field's value while a record is mapped; set is false while the
// field is missing.
type slot struct {
	val any
	set bool
}

// Apply maps one decoded source record through the steps of the mapper (DESIGN section 2), in
// this order: filter, field expressions, value maps, defaults, validations. A record the
// filter rejects is skipped, which is not an error. The source is not modified; it may hold
// what encoding/json or yaml.v3 produce, json.Number and any Go integer or float type. As
// encoding/json decodes 3 and 3.0 alike as float64(3), an integral float64 is read as an int,
// so that Apply on such a record behaves as ApplyJSON on its JSON text.
//
// Errors are an *EvalError for an expression that fails on this record or a value with no
// value map entry, and one *ValidationError per failed rule (joined with errors.Join).
func (p *Program) Apply(source map[string]any) (Result, error) {
	norm, verr := normalize(source)
	if verr != nil {
		return Result{}, &EvalError{Path: "source" + verr.at, Message: verr.msg}
	}
	ctx, cancel := p.deadline()
	defer cancel()
	vals := make([]slot, len(p.fields))
	skipped, err := p.evaluate(ctx, norm.(map[string]any), vals)
	if err != nil {
		return Result{}, err
	}
	if skipped {
		return Result{Skipped: true, Reason: p.filterReason}, nil
	}
	record := p.record(vals)
	if err := p.validate(ctx, vals, record); err != nil {
		return Result{}, err
	}
	return Result{Record: record}, nil
}

// ApplyJSON is Apply for the hot path: it decodes a JSON object, maps it, and returns the
// target record as compact JSON with keys sorted at every level, so that equal records give
// equal bytes (and equal content hashes in the ledger). A field whose expression yields an
// empty optional and that has no default is left out. A payload that is not a single JSON
// object, or nests deeper than 512 levels, is an error saying so. A skipped record returns
// skip true and the reason, with no output. Errors are those of Apply.
func (p *Program) ApplyJSON(payload []byte) (out []byte, skip bool, reason string, err error) {
	st := p.stacks.Get().(*stacks)
	source, err := decodeObject(payload, st)
	p.stacks.Put(st)
	if err != nil {
		return nil, false, "", &PayloadError{Err: err}
	}
	ctx, cancel := p.deadline()
	defer cancel()
	vals := make([]slot, len(p.fields))
	skipped, err := p.evaluate(ctx, source, vals)
	if err != nil {
		return nil, false, "", err
	}
	if skipped {
		return nil, true, p.filterReason, nil
	}
	if len(p.rules) > 0 {
		var record map[string]any
		if p.needsTarget {
			record = p.record(vals)
		}
		if err := p.validate(ctx, vals, record); err != nil {
			return nil, false, "", err
		}
	}
	out = make([]byte, 0, len(payload)+2)
	out = append(out, '{')
	first := true
	for i := range p.fields {
		if !vals[i].set {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, p.fields[i].key...)
		if out, err = appendJSON(out, vals[i].val); err != nil {
			if errors.Is(err, errTooLarge) {
				return nil, false, "", &EvalError{Path: p.fields[i].path, Message: err.Error()}
			}
			return nil, false, "", fmt.Errorf("encoding %s: %w", p.fields[i].path, err)
		}
	}
	if len(out) >= MaxRecordSize {
		return nil, false, "", &EvalError{Path: "fields", Message: errTooLarge.Error()}
	}
	return append(out, '}'), false, "", nil
}

// deadline is the context one record is mapped under: with a deadline of evalTimeout if an
// expression loops, else one that never ends (and costs nothing to make).
func (p *Program) deadline() (context.Context, context.CancelFunc) {
	if p.loops {
		return context.WithTimeout(context.Background(), evalTimeout)
	}
	return context.Background(), func() {}
}

// evaluate runs the filter, then every field's expression, value map and default into vals.
// It reports true when the filter rejects the record.
func (p *Program) evaluate(ctx context.Context, source map[string]any, vals []slot) (bool, error) {
	// The source is adapted to CEL once and shared by every expression.
	act := &sourceActivation{source: types.NewStringInterfaceMap(p.adapter, source)}
	if p.filter != nil {
		out, err := p.filter.eval(ctx, act)
		if err != nil {
			return false, &EvalError{Path: "filter", Message: evalMessage(err)}
		}
		keep, ok := out.(types.Bool)
		if !ok {
			return false, &EvalError{Path: "filter", Message: fmt.Sprintf("result is %s, want bool", out.Type().TypeName())}
		}
		if !keep {
			return true, nil
		}
	}
	for i := range p.fields {
		f := &p.fields[i]
		s := &vals[i]
		if f.expr != nil {
			var answered bool
			if f.expr.sel != nil {
				s.val, s.set, answered = f.expr.sel.lookup(source)
			}
			if !answered {
				out, err := f.expr.eval(ctx, act)
				if err != nil {
					return false, &EvalError{Path: f.path, Message: evalMessage(err)}
				}
				v, ok, err := fromCEL(out)
				if err != nil {
					return false, &EvalError{Path: f.path, Message: err.Error()}
				}
				s.val, s.set = v, ok
			}
		}
		if f.valueMap != nil && s.set {
			v, err := f.valueMap.translate(s.val)
			if err != nil {
				return false, err
			}
			s.val = v
		}
		if f.hasDef && (!s.set || s.val == nil || s.val == "") {
			s.val, s.set = f.def, true
		}
	}
	return false, nil
}

// evalMessage is the message of an expression's error on a record: CEL's own, but for the
// cost limit, which says what the limit is and what to do.
func evalMessage(err error) string {
	var cancelled interpreter.EvalCancelledError
	if errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded {
		return fmt.Sprintf("cost limit exceeded: the expression costs more than %s units on this record (loops over large lists, or strings it makes ever longer); make it do less, or trim the record at its source",
			thousands(costLimit))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("time limit exceeded: the mapping's loops took more than %s on this record (a loop that reads a long string at every step, say); make them do less, or trim the record at its source",
			evalTimeout)
	}
	return err.Error()
}

// translate looks v up in the value map. Null, and "" unless the map lists it, are left for
// the defaults to fill.
func (m *valueMap) translate(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	key, ok := valueKey(v)
	if !ok {
		return nil, &EvalError{
			Path:    m.path,
			Message: fmt.Sprintf("field %q holds a list or map; value maps translate strings, numbers and booleans", m.field),
		}
	}
	if t, ok := m.values[key]; ok {
		return t, nil
	}
	if key == "" {
		return v, nil
	}
	if m.fallback != nil {
		return m.fallback, nil
	}
	return nil, &EvalError{
		Path:    m.path,
		Message: fmt.Sprintf("no mapping for value %q of field %q; add it to %s.values or set a fallback", key, m.field, m.path),
	}
}

// record builds the target record from vals, leaving out missing fields.
func (p *Program) record(vals []slot) map[string]any {
	record := make(map[string]any, len(vals))
	for i := range vals {
		if vals[i].set {
			record[p.fields[i].name] = vals[i].val
		}
	}
	return record
}

// validate runs every rule on the target record and reports every failure, not just the
// first, so that one round fixes them all. record may be nil when no check reads `target`.
func (p *Program) validate(ctx context.Context, vals []slot, record map[string]any) error {
	if len(p.rules) == 0 {
		return nil
	}
	act := &checkActivation{target: types.NewStringInterfaceMap(p.adapter, record)}
	var errs []error
	for _, r := range p.rules {
		f := &p.fields[r.index]
		act.value = vals[r.index].val
		out, err := r.check.eval(ctx, act)
		if err != nil {
			msg := fmt.Sprintf("checking field %q: %s", f.name, evalMessage(err))
			if act.value == nil {
				msg += "; the field is null or missing: write value == null || <check> if that is allowed"
			}
			errs = append(errs, &EvalError{Path: r.path, Message: msg})
			continue
		}
		ok, isBool := out.(types.Bool)
		if !isBool {
			errs = append(errs, &EvalError{Path: r.path, Message: fmt.Sprintf("result is %s, want bool", out.Type().TypeName())})
			continue
		}
		if !ok {
			errs = append(errs, &ValidationError{Field: f.name, Value: act.value, Message: r.message})
		}
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	default:
		return errors.Join(errs...)
	}
}

// sourceActivation binds `source` for field expressions and the filter; a struct instead of
// a map[string]any saves building a map per record.
type sourceActivation struct {
	source ref.Val
}

var _ interpreter.Activation = (*sourceActivation)(nil)

func (a *sourceActivation) ResolveName(name string) (any, bool) {
	if name == "source" {
		return a.source, true
	}
	return nil, false
}

func (a *sourceActivation) Parent() interpreter.Activation { return nil }

// checkActivation binds `value` and `target` for validation checks.
type checkActivation struct {
	value  any
	target ref.Val
}

var _ interpreter.Activation = (*checkActivation)(nil)

func (a *checkActivation) ResolveName(name string) (any, bool) {
	switch name {
	case "value":
		return a.value, true
	case "target":
		return a.target, true
	default:
		return nil, false
	}
}

func (a *checkActivation) Parent() interpreter.Activation { return nil }
