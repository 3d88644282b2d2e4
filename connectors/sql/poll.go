package sql

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/syncline/syncline/pkg/connector"
)

// The kinds of change column a polled entity can have.
const (
	// ChangeTimestamp is an updated-at column: a timestamp set on every insert and update.
	ChangeTimestamp = "timestamp"
	// ChangeSequence is an integer that every insert and update sets to a greater value.
	ChangeSequence = "sequence"
)

// The defaults of a polled entity's settings.
const (
	defaultPollKey  = "id"
	defaultPageSize = 500
	maxPageSize     = 10000
	// defaultSettle leaves a change unread until it is this old, so that a row whose
	// updated-at was set in a transaction that commits up to this long after is still read.
	defaultSettle = 5 * time.Second
)

const pollSummary = "what a polled source reads, per entity (customer, product, ...): table (the table or view, optionally schema.table, default settings.table; " +
	"for mariadb a table of the DSN's database), key_column (the record's key, unique; default id), change_column (set on every insert and update), " +
	"change_type (timestamp: an updated-at column, the default; sequence: an increasing integer), tombstone_column (optional: a row whose value there " +
	"is neither NULL nor false nor 0 is read as a delete), page_size (rows per read, default 500, at most 10000), settle (timestamp only: read a change " +
	"once it is this old by the database's clock, so that rows of transactions that commit late are not skipped; default 5s)"

// poll is how one entity is polled: checked, defaults filled in.
type poll struct {
	Entity    string
	Table     string
	Key       string
	Change    string
	Kind      string // ChangeTimestamp or ChangeSequence
	Tombstone string // empty: the entity reports no deletes
	PageSize  int
	Settle    time.Duration
}

var entityPattern = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

var (
	identifierRE = regexp.MustCompile(`^` + identifierPattern + `$`)
	tableRE      = regexp.MustCompile(`^` + tablePattern + `$`)
)

var pollFields = []string{"change_column", "change_type", "key_column", "page_size", "settle", "table", "tombstone_column"}

// sourceEntities is the polled side's SourceEntitiesFunc: the entities of settings.poll.
func sourceEntities(settings map[string]any) ([]string, error) {
	polls, err := parsePolls(settings)
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(polls)), nil
}

// parsePolls reads settings.poll from settings the registry validated, and checks that the
// driver can be polled. Every problem is a *connector.SettingsError naming its path; they
// are joined.
func parsePolls(settings map[string]any) (map[string]poll, error) {
	driver, _ := settings["driver"].(string)
	table, _ := settings["table"].(string)
	raw, given := settings["poll"].(map[string]any)
	switch {
	case driver == DriverSQLite:
		return nil, &connector.SettingsError{Path: "settings.driver", Reason: "a sqlite endpoint is not polled (it is a target only); poll a postgres or mariadb database"}
	case !given || len(raw) == 0:
		return nil, &connector.SettingsError{Path: "settings.poll", Reason: "names no entity, so the endpoint cannot be polled; give per entity its table, key_column and change_column, such as customer: {table: customers, key_column: id, change_column: updated_at}"}
	case driver == DriverMariaDB && strings.Contains(table, "."):
		return nil, &connector.SettingsError{Path: "settings.table", Reason: fmt.Sprintf("%q names another database: a mariadb endpoint reads the database of its DSN only; name the table alone, or make an endpoint for the other database", table)}
	}
	var errs []error
	polls := make(map[string]poll, len(raw))
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		path := "settings.poll." + name
		if !entityPattern.MatchString(name) {
			errs = append(errs, &connector.SettingsError{Path: path, Reason: "the entity name must be lower-case letters, digits, '_' or '-', starting with a letter"})
			continue
		}
		p, problems := parsePoll(name, raw[name], driver, table)
		for _, e := range problems {
			e.Path = path + e.Path
			errs = append(errs, e)
		}
		if len(problems) == 0 {
			polls[name] = p
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return polls, nil
}

// parsePoll checks one entity's settings; each problem's Path is relative to the entity
// (".table"). table is the endpoint's, read when the entity names none.
func parsePoll(entity string, v any, driver, table string) (poll, []*connector.SettingsError) {
	m, ok := v.(map[string]any)
	if !ok {
		return poll{}, []*connector.SettingsError{{Reason: "must be a map such as {table: customers, key_column: id, change_column: updated_at}"}}
	}
	var problems []*connector.SettingsError
	fail := func(field, format string, args ...any) {
		problems = append(problems, &connector.SettingsError{Path: "." + field, Reason: fmt.Sprintf(format, args...)})
	}
	str := func(field string) string {
		v, ok := m[field]
		if !ok || v == nil {
			return ""
		}
		s, ok := v.(string)
		if !ok {
			fail(field, "must be a string")
		}
		return s
	}
	p := poll{Entity: entity, Table: str("table"), Key: str("key_column"), Change: str("change_column"),
		Kind: str("change_type"), Tombstone: str("tombstone_column"), PageSize: defaultPageSize}

	if _, named := m["table"]; !named {
		p.Table = table
	}
	switch {
	case p.Table == "":
		fail("table", "required: the table or view to read, such as customers or sales.customers")
	case !tableRE.MatchString(p.Table):
		fail("table", "%q is not valid: letters, digits and _, not starting with a digit, optionally schema.table", p.Table)
	case driver == DriverMariaDB && strings.Contains(p.Table, "."):
		fail("table", "%q names another database: a mariadb endpoint reads the database of its DSN only; name the table alone, or make an endpoint for the other database", p.Table)
	}
	if p.Key == "" {
		p.Key = defaultPollKey
	}
	for _, c := range []struct{ field, value string }{{"key_column", p.Key}, {"change_column", p.Change}, {"tombstone_column", p.Tombstone}} {
		if c.value != "" && !identifierRE.MatchString(c.value) {
			fail(c.field, "%q is not a column name: letters, digits and _, not starting with a digit", c.value)
		}
	}
	switch {
	case p.Change == "":
		fail("change_column", "required: the column every insert and update sets, an updated-at timestamp or an increasing sequence")
	case p.Change == p.Key:
		fail("change_column", "is the key column too; name the updated-at or sequence column")
	}
	if p.Tombstone != "" && (p.Tombstone == p.Key || p.Tombstone == p.Change) {
		fail("tombstone_column", "is the key or change column; name the column that marks a row deleted (a deleted flag or a deleted_at), or leave it out")
	}
	switch p.Kind {
	case "":
		p.Kind = ChangeTimestamp
	case ChangeTimestamp, ChangeSequence:
	default:
		fail("change_type", "%q is not one of %s, %s", p.Kind, ChangeTimestamp, ChangeSequence)
	}
	if v, ok := m["page_size"]; ok && v != nil {
		n, ok := wholeNumber(v)
		switch {
		case !ok:
			fail("page_size", "must be a whole number")
		case n < 1 || n > maxPageSize:
			fail("page_size", "%d is out of range: from 1 to %d rows per read", n, maxPageSize)
		default:
			p.PageSize = int(n)
		}
	}
	if v, ok := m["settle"]; ok && v != nil {
		d, ok := duration(v)
		switch {
		case !ok:
			fail("settle", `must be a duration such as "5s" or "1m"`)
		case d < 0:
			fail("settle", "must be 0s or more")
		case p.Kind == ChangeSequence:
			fail("settle", "applies to change_type timestamp only: a sequence has no time to wait on; leave it out (see the connector's README on sequences that commit out of order)")
		default:
			p.Settle = d
		}
	} else if p.Kind == ChangeTimestamp {
		p.Settle = defaultSettle
	}
	var unknown []string
	for k := range m {
		if !slices.Contains(pollFields, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		fail(k, "unknown setting; a polled entity's settings are %s", strings.Join(pollFields, ", "))
	}
	return p, problems
}

// wholeNumber reads an integer as YAML, JSON or Go code give it.
func wholeNumber(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint64:
		return int64(n), n <= math.MaxInt64
	case float64:
		return int64(n), n == math.Trunc(n) && math.Abs(n) < 1<<53
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}

func duration(v any) (time.Duration, bool) {
	switch d := v.(type) {
	case time.Duration:
		return d, true
	case string:
		parsed, err := time.ParseDuration(d)
		return parsed, err == nil
	}
	return 0, false
}
