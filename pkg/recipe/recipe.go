// Package recipe is where the business rules that every target shares are written, once: a
// target adapter (pkg/connector.Target) only finds and writes records, and the recipe decides
// what to find and what to write.
//
// For each record of a push the upsert recipe
//
//   - looks the record up by its external reference (the source key) before it creates it,
//     so that a lost ledger entry or a redelivered batch never makes a second record;
//   - applies the flow's duplicate policy when the target already holds a record that the
//     ledger does not know: skip keeps it (and adopts its id), error fails the event, update
//     overwrites it;
//   - applies the flow's write modes: create_only fields are left out of updates,
//     update_only fields out of creates, and if_empty fields are written over a value only
//     when the target's current value is empty, which it reads for them;
//   - looks up every record of a target whose ids are not the source keys, so that it
//     updates or deletes the record the target holds now: it creates again a record that
//     was removed from the target behind the flow's back, and counts the delete of a
//     record that is not there as done (a target that upserts by key needs neither);
//   - refuses, naming what is missing, a write the target cannot do for the entity.
//
// Plan computes all of that, reading the target but writing nothing (`syncline flow test`);
// Run plans and writes. A batch that holds a key more than once is planned and written in
// rounds, one record of each key per round, so that a later record of a key sees what the
// earlier one did.
package recipe

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/flowconfig"
)

// Duplicate policies: what happens when a record is to be created and the target holds it
// already, or when the ledger knows it and its content changed (see the dedup stage).
const (
	DuplicateUpdate = flowconfig.DuplicateUpdate
	DuplicateSkip   = flowconfig.DuplicateSkip
	DuplicateError  = flowconfig.DuplicateError
)

// Flow is what the recipe needs to know of a flow.
type Flow struct {
	// Target names the target endpoint, for messages.
	Target string
	Entity string
	// Caps is what the target can do with the entity.
	Caps connector.Capabilities
	// Duplicates is the duplicate policy; empty means update.
	Duplicates string
	// WriteModes say per field when it is written; a field not listed is always written.
	// The map is the flow's: read it, never change it.
	WriteModes map[string]connector.WriteMode
	// KeyIsID says that the target's id of a record is its source key.
	KeyIsID bool
	// MatchBy is a field of the record's payload by which the target is asked for the
	// record when its external reference finds nothing: a customer's e-mail, a product's
	// SKU. A record made in the target by hand, or by another flow (a customer an order
	// made), is then found instead of made a second time. Empty: the external reference
	// alone.
	MatchBy string
	// Document, when set, runs the document recipe: the flow's entity is a document
	// (IsDocument) that its target reads in its canonical shape.
	Document *Document
}

// For is the recipe's view of a compiled flow whose target can do with its entity what
// caps say; related are what it can do with the entities a document refers to (the flow's
// compiled Target.Related, or the connector's for an older config). lock serialises
// finding and making a document's customer among processes; nil: within this one.
func For(f *flowconfig.Flow, caps connector.Capabilities, related []connector.Capabilities, lock Locker) Flow {
	rf := Flow{Target: f.Target.Name, Entity: f.Entity, Caps: caps, Duplicates: f.Duplicates,
		WriteModes: f.WriteModes, KeyIsID: f.Target.KeyIsID}
	if m := matchBy[f.Entity]; caps.Canonical && caps.CanFind(m) {
		rf.MatchBy = m
	}
	if IsDocument(f.Entity) && caps.Canonical {
		d := &Document{Lock: lock}
		if f.Document != nil {
			d.State, d.DefaultCustomer, d.Types = f.Document.State, f.Document.DefaultCustomer, f.Document.Types
		}
		for _, c := range related {
			switch c.Entity {
			case "customer":
				d.Customer = c
			case "product":
				d.Product = c
			case "invoice":
				d.Invoice = c
			}
		}
		rf.Document = d
	}
	return rf
}

// matchBy is the field each canonical entity is matched by when its external reference
// finds nothing (Flow.MatchBy): the same customer is the same e-mail, the same product the
// same SKU.
var matchBy = map[string]string{"customer": connector.FieldEmail, "product": connector.FieldSKU}

// Related lists the entities whose capabilities a flow of entity needs besides its own: those
// a document refers to.
func Related(entity string) []string {
	switch {
	case entity == "payment":
		return []string{"invoice"}
	case IsDocument(entity):
		return []string{"customer", "product"}
	}
	return nil
}

// Action is what the recipe did, or would do, with one record.
type Action string

const (
	Created Action = "created"
	Updated Action = "updated"
	Deleted Action = "deleted"
	Skipped Action = "skipped"
	Failed  Action = "failed"
)

// The codes of skips and failures; they are the pipeline's codes (pkg/stage).
const (
	CodeDuplicate = "duplicate"
	CodeRefused   = "target_rejected"
	// CodeSkippedByTarget: the target left the record out on purpose
	// (connector.Result.Skipped), such as a stock level it does not manage.
	CodeSkippedByTarget = "skipped_by_target"
)

// Outcome is what happened, or would happen, to one record.
type Outcome struct {
	Action Action
	// TargetID is the record's id in the target: the one written, found or kept.
	TargetID string
	// Code and Reason say why a record was skipped or failed: a failure's Reason is what
	// the dead letter and the API log say, and never holds the payload.
	Code   string
	Reason string
}

// Step is the plan for one record: the write it needs (none for a skip, a failure, or a
// delete or an update that has nothing to do) and its outcome, which Run completes with
// the target's answer.
type Step struct {
	Outcome
	Write *connector.Write
	// Current holds the target's fields as they were read, when they were; Diff the fields
	// the write changes in them: name -> [current, new] as JSON (null for a missing field).
	Current json.RawMessage
	Diff    map[string][2]json.RawMessage
}

// Plan works out what Run would do with records, reading the target (its Find) but never
// writing to it. A returned error is the target's (an outage or a throttle), for the batch.
// Records of one key after the first are planned as if the first's write had succeeded.
func Plan(ctx context.Context, t connector.Target, f Flow, records []connector.Record) ([]Step, error) {
	return run(ctx, t, f, records, false)
}

// Run applies records to the target as the recipe says and returns one outcome per
// record, at the same index. A returned error means the batch as a whole could not be
// applied; see connector.Target for what the kinds of error mean. Every step is a
// lookup then a write, so running a batch again after a crash finds what the first run
// wrote.
func Run(ctx context.Context, t connector.Target, f Flow, records []connector.Record) ([]Outcome, error) {
	steps, err := run(ctx, t, f, records, true)
	if err != nil {
		return nil, err
	}
	out := make([]Outcome, len(steps))
	for i := range steps {
		out[i] = steps[i].Outcome
	}
	return out, nil
}

func run(ctx context.Context, t connector.Target, f Flow, records []connector.Record, write bool) ([]Step, error) {
	steps := make([]Step, len(records))
	// known is what earlier rounds did to a key's record in the target.
	known := map[string]state{}
	// unwritten are the records of the rounds planned but not yet written. A target
	// whose ids are the keys gets every round in one Write, in batch order: no later
	// round needs an id that an earlier write makes.
	var unwritten []int
	for _, round := range rounds(records) {
		if err := planRound(ctx, t, f, records, round, known, steps, !write); err != nil {
			return nil, err
		}
		if f.Document != nil {
			if err := f.Document.resolve(ctx, t, f, records, round, steps, !write); err != nil {
				return nil, err
			}
		}
		for _, i := range round {
			if f.KeyIsID && steps[i].Action == Created && steps[i].Write != nil {
				steps[i].TargetID = records[i].Key
			}
		}
		unwritten = append(unwritten, round...)
		if write && !f.KeyIsID {
			if err := writeRound(ctx, t, f, unwritten, steps); err != nil {
				return nil, err
			}
			unwritten = unwritten[:0]
		}
		for _, i := range round {
			s := &steps[i]
			switch {
			case s.Action == Deleted:
				known[records[i].Key] = state{}
			case s.Code == CodeSkippedByTarget:
				// The target wrote nothing: what it holds is as unknown as before.
			case s.Action == Created || s.Action == Updated || s.Action == Skipped || s.Code == CodeDuplicate:
				id := s.TargetID
				if id == "" {
					// Only a plan has no id for a create: nothing was written.
					id = "(new)"
				}
				known[records[i].Key] = state{id: id, exists: true}
			}
		}
	}
	if write && len(unwritten) > 0 {
		if err := writeRound(ctx, t, f, unwritten, steps); err != nil {
			return nil, err
		}
	}
	return steps, nil
}

// state is what the recipe knows of a key's record in the target after a round.
type state struct {
	id     string
	exists bool
}

// rounds splits the indexes of records so that no round holds a key twice: the n-th record
// of a key goes to round n.
func rounds(records []connector.Record) [][]int {
	seen := make(map[string]int, len(records))
	var out [][]int
	for i, r := range records {
		n := seen[r.Key]
		seen[r.Key] = n + 1
		if n == len(out) {
			out = append(out, nil)
		}
		out[n] = append(out[n], i)
	}
	return out
}

// planRound plans the records of one round: it looks up, in one Find, the keys whose
// record it must see, then decides each record.
//
// A record's current fields are read when its write modes need them (if_empty), and for
// every upsert of a plan (dryRun), which shows the fields an update changes.
func planRound(ctx context.Context, t connector.Target, f Flow, records []connector.Record, round []int, known map[string]state, steps []Step, dryRun bool) error {
	needsFields := f.Caps.Read && (hasMode(f.WriteModes, connector.WriteIfEmpty) || dryRun)
	var keys []string
	looked := map[string]bool{}
	for _, i := range round {
		r := records[i]
		if r.Key == "" {
			continue
		}
		if needsFields && r.Op == connector.OpUpsert {
			keys = append(keys, r.Key)
			looked[r.Key] = true
			continue
		}
		if _, ok := known[r.Key]; ok {
			continue
		}
		// A target whose ids are the keys upserts: only a create needs to know what
		// is there. Any other target is asked about every record, so that a record
		// removed or made behind the flow's back is seen, whatever the ledger says.
		if r.Create || !f.KeyIsID {
			keys = append(keys, r.Key)
			looked[r.Key] = true
		}
	}
	found := map[string][]connector.Found{}
	if len(keys) > 0 {
		if !f.Caps.CanFind(connector.FieldExternalRef) {
			for _, i := range round {
				steps[i] = refused(records[i], fmt.Sprintf("target %s cannot find %s records by their external reference, which the recipe needs to create or change one without a duplicate; use a target that can", f.Target, f.Entity))
			}
			return nil
		}
		got, err := t.Find(ctx, f.Entity, connector.FieldExternalRef, keys)
		if err != nil {
			return fmt.Errorf("looking up %d %s records by external reference in %s: %w", len(keys), f.Entity, f.Target, err)
		}
		for _, g := range got {
			found[g.Value] = append(found[g.Value], g)
		}
		if err := match(ctx, t, f, records, round, looked, found); err != nil {
			return err
		}
	}
	for _, i := range round {
		steps[i] = plan(f, records[i], known, found, looked[records[i].Key])
	}
	return nil
}

// match asks the target, in one Find by f.MatchBy, for the upserts of round that their
// external reference did not find, and adds what it finds to found under their keys.
func match(ctx context.Context, t connector.Target, f Flow, records []connector.Record, round []int, looked map[string]bool, found map[string][]connector.Found) error {
	if f.MatchBy == "" {
		return nil
	}
	// An e-mail is the same in any case; a SKU is not.
	fold := strings.TrimSpace
	if f.MatchBy == connector.FieldEmail {
		fold = strings.ToLower
	}
	keysOf := map[string][]string{} // the value, folded -> the keys whose records have it
	var values []string
	for _, i := range round {
		r := records[i]
		if !looked[r.Key] || r.Op != connector.OpUpsert || len(found[r.Key]) > 0 {
			continue
		}
		var v map[string]any
		if json.Unmarshal(r.Payload, &v) != nil {
			continue // refused as not an object when planned
		}
		s, _ := v[f.MatchBy].(string)
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		folded := fold(s)
		if len(keysOf[folded]) == 0 {
			values = append(values, s)
		}
		keysOf[folded] = append(keysOf[folded], r.Key)
	}
	if len(values) == 0 {
		return nil
	}
	got, err := t.Find(ctx, f.Entity, f.MatchBy, values)
	if err != nil {
		return fmt.Errorf("looking up %d %s records by %s in %s: %w", len(values), f.Entity, f.MatchBy, f.Target, err)
	}
	for _, g := range got {
		for _, key := range keysOf[fold(g.Value)] {
			if !slices.ContainsFunc(found[key], func(h connector.Found) bool { return h.ID == g.ID }) {
				found[key] = append(found[key], g)
			}
		}
	}
	return nil
}

// plan decides one record. looked says its key was looked up, so found says whether the
// target holds it.
func plan(f Flow, r connector.Record, known map[string]state, found map[string][]connector.Found, looked bool) Step {
	if r.Key == "" {
		return refused(r, "the record has an empty key; the flow's key field must be set")
	}
	// What the target holds under the key, as far as the recipe knows.
	var cur *connector.Found
	// fromBatch says that what is known of the key is what this batch did to it.
	k, fromBatch := known[r.Key]
	exists, sure := false, false
	if fromBatch && !looked {
		exists, sure = k.exists, true
		if k.exists {
			cur = &connector.Found{ID: k.id}
		}
	} else if looked {
		sure = true
		switch hits := found[r.Key]; len(hits) {
		case 0:
		case 1:
			exists, cur = true, &hits[0]
		default:
			ids := make([]string, len(hits))
			for j, h := range hits {
				ids[j] = h.ID
			}
			return refused(r, fmt.Sprintf("%d %s records in target %s have the external reference %q (ids %s); remove the duplicates in the target, then replay the record", len(hits), f.Entity, f.Target, r.Key, strings.Join(ids, ", ")))
		}
	}
	id := r.TargetID
	if cur != nil && cur.ID != "" {
		id = cur.ID
	}
	if id == "" && f.KeyIsID && (exists || !sure) {
		id = r.Key
	}

	switch r.Op {
	case connector.OpDelete:
		if sure && !exists || id == "" {
			// Not there: the delete's effect is already in place.
			return Step{Outcome: Outcome{Action: Deleted}}
		}
		if !f.Caps.Delete {
			return refused(r, fmt.Sprintf("target %s cannot delete %s records; delete it there by hand, or filter deletes out of the flow", f.Target, f.Entity))
		}
		return Step{Outcome: Outcome{Action: Deleted, TargetID: id}, Write: &connector.Write{Op: connector.WriteDelete, Key: r.Key, ID: id, Version: r.Version}}
	case connector.OpUpsert:
	default:
		return refused(r, fmt.Sprintf("operation %q is neither %q nor %q", r.Op, connector.OpUpsert, connector.OpDelete))
	}

	// A key that was looked up and is not there is created, also when the ledger had it:
	// it was removed from the target behind the flow's back.
	create := sure && !exists
	var current map[string]json.RawMessage
	if cur != nil && len(cur.Fields) > 0 {
		current, _ = object(cur.Fields)
	}
	// The payload is split into fields only when write modes or the current record need
	// it; otherwise it goes to the target as the mapping made it.
	plain := len(f.WriteModes) == 0 && current == nil
	var fields map[string]json.RawMessage
	var ok bool
	if plain {
		if !isObject(r.Payload) {
			return refused(r, "the payload is not a JSON object; the mapping must produce an object of field -> value")
		}
	} else if fields, ok = object(r.Payload); !ok {
		return refused(r, "the payload is not a JSON object; the mapping must produce an object of field -> value")
	}
	if !create && r.Create && current != nil && holds(current, fields, f.WriteModes) &&
		(f.Duplicates != DuplicateUpdate || len(diff(fields, current, func(name string) bool { return f.WriteModes[name] != connector.WriteCreateOnly })) == 0) {
		// The record as this create would write it: an earlier delivery of the same
		// batch wrote it (and the ledger did not hear of it), or it is the same record
		// made elsewhere. Either way it is created, and there is nothing to write. (Under
		// the update policy, an update_only field that differs is still written.)
		return Step{Outcome: Outcome{Action: Created, TargetID: id}, Current: cur.Fields}
	}
	if !create && r.Create && !fromBatch {
		// In the target, unknown to the ledger: the duplicate policy decides.
		switch f.Duplicates {
		case DuplicateSkip:
			var current json.RawMessage
			if cur != nil {
				current = cur.Fields
			}
			return Step{Outcome: Outcome{Action: Skipped, TargetID: id, Code: CodeDuplicate,
				Reason: fmt.Sprintf("target %s already holds this %s (id %s) and the flow's duplicate policy is skip; kept it as it is", f.Target, f.Entity, id)},
				Current: current}
		case DuplicateError:
			return Step{Outcome: Outcome{Action: Failed, TargetID: id, Code: CodeDuplicate,
				Reason: fmt.Sprintf("key %q already exists in target %s (id %s) and the flow's duplicate policy is error; replay it once the flow's policy is update, or discard it", r.Key, f.Target, id)}}
		}
	}
	if create {
		if !f.Caps.Create {
			return refused(r, fmt.Sprintf("target %s cannot create %s records; create it there first, or use a target that can", f.Target, f.Entity))
		}
		payload := r.Payload
		if !plain {
			payload = encode(fields, func(name string) bool { return f.WriteModes[name] != connector.WriteUpdateOnly })
		}
		return Step{Outcome: Outcome{Action: Created}, Write: &connector.Write{Op: connector.WriteCreate, Key: r.Key, Version: r.Version, Payload: payload}}
	}
	if !f.Caps.Update {
		return refused(r, fmt.Sprintf("target %s cannot update %s records; set the flow's duplicate policy to skip, or use a target that can", f.Target, f.Entity))
	}
	if hasMode(f.WriteModes, connector.WriteIfEmpty) && current == nil {
		if !f.Caps.Read {
			return refused(r, fmt.Sprintf("target %s cannot read %s records, which the flow's if_empty write modes need; write those fields always or create_only", f.Target, f.Entity))
		}
		return refused(r, fmt.Sprintf("target %s did not return the current fields of %s %s, which the flow's if_empty write modes need; check the target, then replay the record", f.Target, f.Entity, id))
	}
	keep := func(name string) bool {
		switch f.WriteModes[name] {
		case connector.WriteCreateOnly:
			return false
		case connector.WriteIfEmpty:
			return current == nil || isEmpty(current[name])
		}
		return true
	}
	step := Step{Outcome: Outcome{Action: Updated, TargetID: id}}
	payload := r.Payload
	if !plain {
		payload = encode(fields, keep)
	}
	if current != nil {
		step.Current = cur.Fields
		step.Diff = diff(fields, current, keep)
	}
	step.Write = &connector.Write{Op: connector.WriteUpdate, Key: r.Key, ID: id, Version: r.Version, Payload: payload}
	return step
}

// writeRound writes the planned writes of the records at indexes round, in one call and in
// their order, and completes their outcomes.
func writeRound(ctx context.Context, t connector.Target, f Flow, round []int, steps []Step) error {
	var writes []connector.Write
	var at []int
	for _, i := range round {
		if w := steps[i].Write; w != nil {
			writes = append(writes, *w)
			at = append(at, i)
		}
	}
	if len(writes) == 0 {
		return nil
	}
	results, err := t.Write(ctx, f.Entity, writes)
	if err != nil {
		return fmt.Errorf("writing %d %s records to %s: %w", len(writes), f.Entity, f.Target, err)
	}
	if len(results) != len(writes) {
		return fmt.Errorf("target %s returned %d results for %d writes", f.Target, len(results), len(writes))
	}
	for j, i := range at {
		s := &steps[i]
		if err := results[j].Err; err != nil {
			s.Outcome = Outcome{Action: Failed, Code: CodeRefused, Reason: err.Error()}
			continue
		}
		if why := results[j].Skipped; why != "" {
			s.Outcome = Outcome{Action: Skipped, TargetID: results[j].TargetID, Code: CodeSkippedByTarget, Reason: why}
			continue
		}
		if id := results[j].TargetID; id != "" {
			s.TargetID = id
		}
		if s.TargetID == "" && s.Action != Deleted {
			s.Outcome = Outcome{Action: Failed, Code: CodeRefused,
				Reason: fmt.Sprintf("target %s wrote record %q and returned no id for it; report this as a bug of the %s connector", f.Target, writes[j].Key, f.Target)}
		}
	}
	return nil
}

func refused(r connector.Record, why string) Step {
	return Step{Outcome: Outcome{Action: Failed, Code: CodeRefused, Reason: fmt.Sprintf("record %q: %s", r.Key, why)}}
}

func hasMode(modes map[string]connector.WriteMode, m connector.WriteMode) bool {
	for _, v := range modes {
		if v == m {
			return true
		}
	}
	return false
}

// isObject reports whether b holds a JSON object, by its first byte: the pipeline's payloads
// are JSON (checked at ingest and made by the mapper), so an object is all it can be.
func isObject(b json.RawMessage) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// object splits a JSON object into its fields; ok is false when b is not an object.
func object(b json.RawMessage) (map[string]json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, false
	}
	return m, true
}

// encode writes the fields that keep lets through as a JSON object, in name order.
func encode(fields map[string]json.RawMessage, keep func(string) bool) json.RawMessage {
	names := make([]string, 0, len(fields))
	for name := range fields {
		if keep(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, name := range names {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(name) // a string always encodes
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(fields[name])
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

// holds reports whether current already holds every field a create would write.
func holds(current, fields map[string]json.RawMessage, modes map[string]connector.WriteMode) bool {
	for name, v := range fields {
		if modes[name] == connector.WriteUpdateOnly {
			continue
		}
		c, ok := current[name]
		if !ok {
			c = json.RawMessage("null")
		}
		if !sameJSON(c, v) && !(isEmpty(c) && isEmpty(v)) {
			return false
		}
	}
	return true
}

// isEmpty reports whether a field's current value counts as empty for if_empty: missing,
// null, "", [] or {}.
func isEmpty(v json.RawMessage) bool {
	switch string(bytes.TrimSpace(v)) {
	case "", "null", `""`, "[]", "{}":
		return true
	}
	return false
}

// diff lists the fields an update changes: those kept whose new value differs from the
// current one.
func diff(fields, current map[string]json.RawMessage, keep func(string) bool) map[string][2]json.RawMessage {
	d := map[string][2]json.RawMessage{}
	for name, v := range fields {
		if !keep(name) {
			continue
		}
		old, ok := current[name]
		if !ok {
			old = json.RawMessage("null")
		}
		if !sameJSON(old, v) {
			d[name] = [2]json.RawMessage{old, v}
		}
	}
	return d
}

// sameJSON compares two JSON values by meaning, as a target that stores them in its own
// types gives them back: 1, 1.0 and "1.00" are the same, and so are objects with their keys
// in another order, or an object and the text of its JSON.
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return sameValue(x, y)
}

func sameValue(x, y any) bool {
	switch xv := x.(type) {
	case string:
		switch yv := y.(type) {
		case string:
			return xv == yv
		case float64:
			f, err := strconv.ParseFloat(strings.TrimSpace(xv), 64)
			return err == nil && f == yv
		case map[string]any, []any:
			var parsed any
			return json.Unmarshal([]byte(xv), &parsed) == nil && sameValue(parsed, y)
		}
		return false
	case float64, map[string]any, []any:
		if s, ok := y.(string); ok {
			return sameValue(s, x)
		}
	}
	switch xv := x.(type) {
	case map[string]any:
		yv, ok := y.(map[string]any)
		if !ok || len(xv) != len(yv) {
			return false
		}
		for k, v := range xv {
			if w, ok := yv[k]; !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		yv, ok := y.([]any)
		if !ok || len(xv) != len(yv) {
			return false
		}
		for i := range xv {
			if !sameValue(xv[i], yv[i]) {
				return false
			}
		}
		return true
	}
	return x == y
}

// Check reports what f's target lacks for the flow, naming each missing capability: every
// flow needs its records found by external reference and created; the update duplicate
// policy needs updates; if_empty write modes need the current record read. The control plane
// refuses such a flow when it is applied.
func Check(f Flow) error {
	var missing []string
	if !f.Caps.CanFind(connector.FieldExternalRef) {
		missing = append(missing, "finding records by their external reference (every flow looks a record up before it creates it)")
	}
	if !f.Caps.Create {
		missing = append(missing, "creating records")
	}
	if (f.Duplicates == "" || f.Duplicates == DuplicateUpdate) && !f.Caps.Update {
		missing = append(missing, "updating records (the flow's duplicate policy is update; skip or error need no updates)")
	}
	if hasMode(f.WriteModes, connector.WriteIfEmpty) && !f.Caps.Read {
		missing = append(missing, "reading records (the flow's if_empty write modes read the current value)")
	}
	if d := f.Document; d != nil {
		missing = append(missing, d.check(f)...)
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("target %s cannot serve the flow's %s records: it lacks %s", f.Target, f.Entity, strings.Join(missing, "; and "))
}
