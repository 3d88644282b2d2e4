// Package mapping turns one source record into one target record, as a flow's mapping says
// (DESIGN section 1, "mapping"). The control plane compiles a Spec when a flow is applied, so
// that a bad mapping is refused then with errors that name the part, the expression and the
// position; the mapper runs the compiled Program on every event.
//
// # Steps
//
// A record goes through the mapper's steps in this order (DESIGN section 2):
//
//  1. filter: a CEL bool over `source`; false skips the record, which is not an error.
//  2. fields: per target field a CEL expression over `source`. An expression that yields an
//     empty optional (`source.?fax`) leaves the field out.
//  3. value maps: translate a field's value (payment terms, tax codes...). Null, and "" unless
//     listed, are left alone for the defaults.
//  4. defaults: fill a field that is missing, null or "" (enrichment, e.g. employeeNumber
//     999999). A default is a target value: value maps do not translate it.
//  5. validations: CEL bools over `value` and `target` on the finished record. Every failed
//     rule is reported, not just the first.
//
// # Values
//
// JSON into CEL: a number written without fraction or exponent that fits in int64 is a CEL
// int; every other number is a CEL double. Integers stay int because CEL does not mix int and
// double in arithmetic: `source.qty * 2` works on ints, and an expression that needs floating
// point says so with `double(source.total) * 1.21`, which works for 100 and 100.5 alike.
// (Reading every number as double would break `source.qty * 2` outright, and the same
// `source.total * 1.21` would work or fail depending on whether a price happens to be round.)
// Comparisons across int and double are enabled, so `source.total > 100` holds for 100.5.
// Strings, booleans, null, arrays and objects are CEL string, bool, null, list and map.
//
// CEL into Go: int is int64, uint is int64 (above the int64 range it is an error), double is
// float64 (NaN and infinities are errors, since JSON cannot hold them), string, bool and null
// are string, bool and nil, lists are []any, maps are map[string]any (int, uint and bool keys
// are written in decimal or as true/false; other keys are errors), timestamps are RFC 3339
// strings in UTC with as many fractional digits as needed, durations are Go duration strings
// ("1h30m0s"), bytes are standard base64 as in protobuf's JSON mapping, and an optional is its
// value (an empty one leaves a field out, and is null inside a list or map).
//
// # Language and limits
//
// Expressions are CEL with optional types (`source.?x.orValue(0)`), the string extensions
// (`source.email.lowerAscii()`, `'%s-%d'.format([a, b])`) and UTC as the default time zone.
// Two limits keep one expression from taking the mapper down. When a flow is applied, cel-go's
// checker estimates each expression's worst-case cost on a record of MaxRecordSize (1 MiB, the
// bus's message limit), counting each comprehension's body once, and an expression estimated
// above MaxEstimatedCost (100,000,000 units) is refused with the estimate and the limit: that
// is an expression that can build a value far larger than its record in a few steps, such as
// a chain of replace calls or a format of many fields (which cel-go leaves unestimated; here
// each argument counts as a whole record). When a record is mapped, an expression with a comprehension, or
// one estimated above 1,000,000 units, may cost at most 1,000,000 units on it (about one per
// operation, one per element or character that a string or list operation reads or builds):
// enough to map some 20,000 order lines, and a record that needs more fails with an
// *EvalError instead of stalling its partition (nested loops gone wrong stop after about
// 100 ms of CPU, and a string grown by replace stops at a few megabytes). Other expressions
// are not metered: the estimate already bounds them below the limit, and metering costs a
// third of the evaluation time. cel-go's cost model misses some work (size(s) or s == t cost
// one unit however long s is), so a record whose expressions loop is also mapped under a
// deadline of 10 s, which only a runaway loop meets; optMap binds a name and does not count
// as a loop. A mapped record larger than MaxRecordSize is an *EvalError
// too, since no stage could carry it. Payloads may nest at most 512 levels deep.
//
// # Output
//
// ApplyJSON writes compact JSON with keys sorted at every level and numbers in their shortest
// form (a double 3.0 is written 3), as encoding/json does with HTML escaping off, so that equal
// records give equal bytes and equal content hashes in the ledger.
package mapping
