package mapping

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
)

// MaxRecordSize is the size in bytes of the largest record a mapping reads or writes: NATS's
// default max_payload, which bounds every message on the bus. Cost estimates assume source
// records up to this size, and a mapped record larger than this is an *EvalError, since no
// stage could pass it on.
const MaxRecordSize = 1 << 20

// costLimit bounds the work of one expression on one record, in CEL cost units (roughly one
// per operation, and per byte or element for operations over strings and lists, including
// the size of what they build). Mapping an order line to a four-field object costs about 50,
// so 1,000,000 leaves room for documents of some 20,000 lines, yet stops a runaway
// comprehension (nested loops over the record) after about 100 ms of CPU, and a string that
// grows step by step (a chain of replace calls) before it reaches a few megabytes. The limit
// is counted, not timed: a record maps or fails the same on a busy machine as on an idle one,
// which a deadline could not promise, and a failure is final (dead-lettered, not retried).
const costLimit = 1_000_000

// MaxEstimatedCost bounds what an expression may cost on the worst record of MaxRecordSize,
// as cel-go's checker estimates it when the flow is applied, with the body of every
// comprehension counted once. Loops are metered as they run, so their iteration count is the
// runtime limit's business; the estimate is there for what one step can do before any meter
// sees it: a replace whose result is the product of two sizes, or a chain of them that
// multiplies a field's size at every link (nine links: 10^10 characters). A single
// replace of one character by ten over a 1 MiB field is estimated at about 12,000,000; a
// second one in a chain at about 140,000,000.
const MaxEstimatedCost = 100_000_000

// Program is a compiled Spec: every expression parsed, type-checked and planned once, when
// the flow is applied. It does not change after Compile (apart from a pool of decoding
// buffers) and is safe for concurrent use by any number of goroutines.
type Program struct {
	adapter      types.Adapter
	filter       *expression
	filterReason string
	fields       []field // sorted by name, the order of the JSON output
	rules        []rule
	needsTarget  bool // some check reads `target`, so the record map must be built for it
	loops        bool // some expression loops, so a record is mapped under a deadline
	names        []string
	stacks       sync.Pool // of *stacks, for decoding payloads
}

// field is one target field: its expression, value map and default, each optional (but not
// all absent).
type field struct {
	name     string
	path     string // "fields.<name>", for errors
	key      []byte // the field's JSON key with its colon, written once here
	expr     *expression
	valueMap *valueMap
	def      any
	hasDef   bool
}

type valueMap struct {
	path     string // "valueMaps.<field>"
	field    string
	values   map[string]any // boxed once here so a translation does not allocate
	fallback any            // nil: an unlisted value is an error
}

type rule struct {
	index   int // into Program.fields
	path    string
	check   *expression
	message string
}

// expression is one compiled expression.
type expression struct {
	prg cel.Program
	// sel, when not nil, answers for the expression where it can.
	sel *selector
	// loops is set for an expression with a comprehension, which runs under the record's
	// deadline (evalTimeout) and checks it every interruptEvery iterations.
	loops bool
}

// evalTimeout bounds the time one record's expressions may take together, if any of them
// loops. The cost limit stops what cel-go's cost model sees; this stops what it does not
// (its cost of size(s) or s == t is one unit, however long s is, and a loop may do that for
// every element of a list). It is a hundred times what a record at the cost limit takes on
// an idle machine, so that only a runaway loop meets it, however busy the machine.
const evalTimeout = 10 * time.Second

// interruptEvery is how many iterations of a comprehension run between looks at the deadline.
const interruptEvery = 100

// eval evaluates e on act; ctx is the record's deadline, which only a looping expression reads.
// noSelectors makes every expression run as CEL, for the tests that compare.
var noSelectors = false

func (e *expression) eval(ctx context.Context, act interpreter.Activation) (ref.Val, error) {
	if e.loops {
		out, _, err := e.prg.ContextEval(ctx, act)
		return out, err
	}
	out, _, err := e.prg.Eval(act)
	return out, err
}

// Compile type-checks every expression of spec so that a bad mapping is refused when a flow is
// applied, not when its first record arrives. Every problem is reported as a *CompileError,
// joined with errors.Join when there are several, so that one round fixes them all. A filter
// or check whose result is not bool (or dyn, which is then checked per record) is refused, and
// so is a spec with no fields and no defaults, and an expression whose estimated cost is above
// MaxEstimatedCost. The package documentation lists the CEL features, the cost limits, and
// how values convert.
func Compile(spec Spec) (*Program, error) {
	if len(spec.Fields) == 0 && len(spec.Defaults) == 0 {
		return nil, &CompileError{
			Path:    "fields",
			Message: "the mapping has no fields and no defaults; add at least one target field, for example sku: source.sku",
		}
	}
	sourceEnv, err := newEnv(cel.Variable("source", cel.MapType(cel.StringType, cel.DynType)))
	if err != nil {
		return nil, fmt.Errorf("creating CEL environment for fields: %w", err)
	}
	checkEnv, err := newEnv(
		cel.Variable("value", cel.DynType),
		cel.Variable("target", cel.MapType(cel.StringType, cel.DynType)),
	)
	if err != nil {
		return nil, fmt.Errorf("creating CEL environment for validations: %w", err)
	}

	p := &Program{adapter: sourceEnv.CELTypeAdapter()}
	p.stacks.New = func() any { return new(stacks) }
	var errs []error
	if strings.TrimSpace(spec.Filter) != "" {
		var ferrs []error
		p.filter, ferrs = compileExpr(sourceEnv, "filter", spec.Filter, true)
		errs = append(errs, ferrs...)
		p.loops = p.filter != nil && p.filter.loops
		p.filterReason = "filtered out by " + spec.Filter
	}

	names := slices.Collect(maps.Keys(spec.Fields))
	for name := range spec.Defaults {
		if _, ok := spec.Fields[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	index := make(map[string]int, len(names))
	for _, name := range names {
		f, ferrs := compileField(sourceEnv, spec, name)
		errs = append(errs, ferrs...)
		p.loops = p.loops || f.expr != nil && f.expr.loops
		index[name] = len(p.fields)
		p.fields = append(p.fields, f)
		p.names = append(p.names, name)
	}

	for _, name := range slices.Sorted(maps.Keys(spec.ValueMaps)) {
		vm, err := compileValueMap(name, spec.ValueMaps[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		i, ok := index[name]
		if !ok {
			errs = append(errs, &CompileError{
				Path:    vm.path,
				Message: fmt.Sprintf("no target field %q in fields or defaults; a value map translates a field the mapping produces", name),
			})
			continue
		}
		p.fields[i].valueMap = vm
	}

	for i, r := range spec.Validations {
		path := fmt.Sprintf("validations[%d]", i)
		fi, ok := index[r.Field]
		switch {
		case r.Field == "":
			errs = append(errs, &CompileError{Path: path + ".field", Message: "field is empty; name the target field to check"})
		case !ok:
			errs = append(errs, &CompileError{
				Path:    path + ".field",
				Message: fmt.Sprintf("no target field %q in fields or defaults; check a field the mapping produces", r.Field),
			})
		}
		check, cerrs := compileExpr(checkEnv, path+".check", r.Check, true)
		errs = append(errs, cerrs...)
		p.loops = p.loops || check != nil && check.loops
		// A mention of "target" anywhere, even in a string literal, builds the map: a
		// harmless over-estimate that saves walking the syntax tree.
		p.needsTarget = p.needsTarget || strings.Contains(r.Check, "target")
		msg := r.Message
		if msg == "" {
			msg = fmt.Sprintf("check %q is false", r.Check)
		}
		p.rules = append(p.rules, rule{index: fi, path: path + ".check", check: check, message: msg})
	}

	switch len(errs) {
	case 0:
		return p, nil
	case 1:
		return nil, errs[0]
	default:
		return nil, errors.Join(errs...)
	}
}

// newEnv makes a CEL environment with the language features a mapping may use.
func newEnv(vars ...cel.EnvOption) (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.OptionalTypes(),
		ext.Strings(),
		cel.CrossTypeNumericComparisons(true),
		cel.DefaultUTCTimeZone(true),
	}
	return cel.NewEnv(append(opts, vars...)...)
}

func compileField(env *cel.Env, spec Spec, name string) (field, []error) {
	f := field{name: name, path: "fields." + name}
	f.key = append(appendString(nil, name), ':')
	var errs []error
	if name == "" {
		errs = append(errs, &CompileError{Path: "fields", Message: "a target field has an empty name; give every field a name"})
	}
	if expr, ok := spec.Fields[name]; ok {
		var ferrs []error
		f.expr, ferrs = compileExpr(env, f.path, expr, false)
		errs = append(errs, ferrs...)
	}
	if def, ok := spec.Defaults[name]; ok {
		path := "defaults." + name
		v, verr := normalize(def)
		switch {
		case verr != nil:
			errs = append(errs, &CompileError{Path: path + verr.at, Message: verr.msg})
		case v == nil:
			errs = append(errs, &CompileError{Path: path, Message: "default is null; give a value or remove the default"})
		default:
			f.def, f.hasDef = v, true
		}
	}
	return f, errs
}

func compileValueMap(name string, vm ValueMap) (*valueMap, error) {
	out := &valueMap{path: "valueMaps." + name, field: name, values: make(map[string]any, len(vm.Values))}
	if len(vm.Values) == 0 && vm.Fallback == nil {
		return nil, &CompileError{
			Path:    out.path,
			Message: "values is empty and there is no fallback, so every value would fail; add values or a fallback",
		}
	}
	for k, v := range vm.Values {
		out.values[k] = v
	}
	if vm.Fallback != nil {
		out.fallback = *vm.Fallback
	}
	return out, nil
}

// compileExpr parses, checks and plans one expression. Positions in the errors are 1-based;
// CEL counts columns from 0.
func compileExpr(env *cel.Env, path, expr string, wantBool bool) (*expression, []error) {
	if strings.TrimSpace(expr) == "" {
		return nil, []error{&CompileError{Path: path, Message: "expression is empty; write a CEL expression"}}
	}
	checked, iss := env.Compile(expr)
	if iss.Err() != nil {
		var errs []error
		for _, e := range iss.Errors() {
			// CEL names the (always empty) container in every undeclared reference; it is noise here.
			msg := strings.ReplaceAll(e.Message, " (in container '')", "")
			ce := &CompileError{Path: path, Expr: expr, Message: msg}
			if line := e.Location.Line(); line > 0 {
				ce.Line, ce.Column = line, e.Location.Column()+1
			}
			errs = append(errs, ce)
		}
		return nil, errs
	}
	if out := checked.OutputType(); wantBool && out.Kind() != types.BoolKind && out.Kind() != types.DynKind {
		return nil, []error{&CompileError{
			Path: path, Expr: expr, Line: 1, Column: 1,
			Message: fmt.Sprintf("result is %s, want bool", out),
		}}
	}
	loops := ranges(checked)
	estimate, err := env.EstimateCost(checked, sizeHints{ranges: loops})
	if err != nil {
		return nil, []error{&CompileError{Path: path, Expr: expr, Message: fmt.Sprintf("estimating the cost: %v", err)}}
	}
	if estimate.Max > MaxEstimatedCost {
		return nil, []error{&CompileError{
			Path: path, Expr: expr,
			Message: fmt.Sprintf("estimated cost on a record of %d bytes is %s, above the limit of %s: the expression can build a value far larger than its record (a chain of replace calls, say); make it do less, or map the field in the source system",
				MaxRecordSize, thousands(estimate.Max), thousands(MaxEstimatedCost)),
		}}
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if len(loops) > 0 || estimate.Max > costLimit {
		opts = append(opts, cel.CostLimit(costLimit),
			cel.CostTrackerOptions(interpreter.OverloadCostTracker(overloads.ExtFormatString, formatCost)))
	}
	if len(loops) > 0 {
		opts = append(opts, cel.InterruptCheckFrequency(interruptEvery))
	}
	prg, err := env.Program(checked, opts...)
	if err != nil {
		return nil, []error{&CompileError{Path: path, Expr: expr, Message: err.Error()}}
	}
	e := &expression{prg: prg, loops: len(loops) > 0}
	if !noSelectors {
		e.sel = selectorOf(checked.NativeRep().Expr())
	}
	return e, nil
}

// ranges returns the expression ids of the ranges of an expression's loops: comprehensions
// (all, exists, exists_one, map, filter...) over a list or map. Only a loop can run long on a small
// expression: without one, CEL visits each node once. An expression whose estimate stays
// within costLimit and has none is not metered, as metering takes a third of the evaluation
// time and could not stop it anyway.
func ranges(checked *cel.Ast) map[int64]bool {
	found := map[int64]bool{}
	celast.PreOrderVisit(checked.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() != celast.ComprehensionKind {
			return
		}
		// optMap binds a name with a comprehension over an empty list: it does not loop.
		r := e.AsComprehension().IterRange()
		if r.Kind() == celast.ListKind && r.AsList().Size() == 0 {
			return
		}
		found[r.ID()] = true
	}))
	return found
}

// sizeHints tells cel-go's cost estimator how large the values of a record can be: any
// string, list or map that comes from the record holds at most MaxRecordSize characters or
// elements. The range of a comprehension counts as one element, so that the estimate
// weighs one pass of its body (see MaxEstimatedCost).
type sizeHints struct{ ranges map[int64]bool }

var _ checker.CostEstimator = sizeHints{}

func (h sizeHints) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	if h.ranges[n.Expr().ID()] {
		return &checker.SizeEstimate{Min: 0, Max: 1}
	}
	return &checker.SizeEstimate{Min: 0, Max: MaxRecordSize}
}

// EstimateCallCost estimates format, whose result cel-go leaves unbounded: it holds the
// format string and every argument written out, each of which may be as long as a record.
// The other functions have cel-go's own estimates.
func (sizeHints) EstimateCallCost(_, overloadID string, target *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	if overloadID != overloads.ExtFormatString || target == nil || len(args) != 1 {
		return nil
	}
	format, n := uint64(MaxRecordSize), uint64(MaxRecordSize)
	if sz := (*target).ComputedSize(); sz != nil {
		format = sz.Max
	}
	if sz := args[0].ComputedSize(); sz != nil {
		n = sz.Max
	}
	size := checker.SizeEstimate{Min: 0, Max: format}.Add(checker.SizeEstimate{Min: 0, Max: n}.Multiply(checker.FixedSizeEstimate(MaxRecordSize)))
	return &checker.CallEstimate{CostEstimate: size.AsCost(), ResultSize: &size}
}

// formatCost charges format at run time for the string it built, as cel-go charges
// replace, so that a chain of them is metered by size.
func formatCost(_ []ref.Val, result ref.Val) *uint64 {
	cost := uint64(1)
	if s, ok := result.(types.String); ok {
		cost += uint64(len(s))
	}
	return &cost
}

// thousands writes n with commas between groups of three digits, as the errors and the
// README write limits.
func thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Fields returns the target fields the mapping may produce (those with an expression and
// those with only a default), sorted.
func (p *Program) Fields() []string { return slices.Clone(p.names) }
