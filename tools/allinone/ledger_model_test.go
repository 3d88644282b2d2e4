package allinone_test

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/services/dedup/ledger"
)

var (
	ledgerCases = flag.Int("ledger.cases", 32, "how many keys, each with its own random sequence of events, TestLedgerModel runs per backend")
	ledgerSeed  = flag.Uint64("ledger.seed", 0, "the seed of TestLedgerModel's sequences; 0 picks one (printed on failure)")
)

// TestLedgerModel checks the ledger's rules, as the README states them,
// against a plain model of them: random sequences of events per key
// (versions shuffled and repeated, the same or changed content, deletes,
// records the filter drops, refusals by the target and replays of the dead
// letters) run through the real pipeline on each store backend, for a flow
// of each duplicate policy at once, and after every round the target, the
// ledger, the API log and the dead letters must be what the model says.
func TestLedgerModel(t *testing.T) {
	seed := *ledgerSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("to run these sequences again: go test ./tools/allinone -run 'TestLedgerModel/%s' -ledger.seed=%d -ledger.cases=%d", b.name, seed, *ledgerCases)
				}
			})
			r := newModelRig(t, b)
			r.run(rand.New(rand.NewPCG(seed, 0)), *ledgerCases)
		})
	}
}

// TestLedgerModelExamples runs the README's examples through the same rig,
// one event at a time, each also checked against the model: an order that
// goes from paid to shipped under the skip policy is a skip, not a
// failure; a newer version skipped as unchanged keeps an older one that
// arrives late from being applied; a delete of an order the target never
// had keeps an older change of it out.
func TestLedgerModelExamples(t *testing.T) {
	r := newModelRig(t, backends[0])
	r.keys = []string{"1001", "1002", "1003"}
	steps := [][]step{
		{r.change("1001", 100, content{10, "paid"}), r.change("1002", 100, content{10, "paid"}), r.remove("1003", 200)},
		{r.change("1001", 200, content{10, "shipped"}), r.change("1002", 300, content{10, "paid"}), r.change("1003", 100, content{10, "paid"})},
		{r.change("1002", 200, content{20, "paid"})},
	}
	for i, s := range steps {
		r.publish(s)
		r.settle(fmt.Sprintf("step %d", i+1))
	}
	got := map[string]string{}
	for _, rec := range r.e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme"}) {
		got[eventFlow(rec.EventId, rec.Flow)] = rec.Action + " " + rec.Status + " " + rec.Code
	}
	for _, c := range []struct {
		step, flow, want string
	}{
		{steps[1][0].events[0].id, "on-skip", "skipped success duplicate"}, // 1001 paid, then shipped
		{steps[1][0].events[0].id, "on-update", "updated success "},
		{steps[1][1].events[0].id, "on-update", "skipped success unchanged"},     // 1002 v300, same content
		{steps[2][0].events[0].id, "on-update", "skipped success stale_version"}, // 1002 v200, late
		{steps[1][2].events[0].id, "on-update", "skipped success stale_version"}, // 1003 v100 after its delete at v200
	} {
		if g := got[eventFlow(c.step, c.flow)]; g != c.want {
			t.Errorf("event %s of flow %s: %q, want %q", c.step, c.flow, g, c.want)
		}
	}
	if rows := r.targetRows("t_update"); rows["1002"].content.total != 10 || rows["1002"].version != 100 {
		t.Errorf("order 1002 in the target: %+v, want total 10 of version 100: the late version 200 must not overwrite it", rows["1002"])
	}
}

// change is a step that publishes one upsert of key.
func (r *modelRig) change(key string, version int64, c content) step {
	return step{key: key,
		changes: []ingest.Change{{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: key, Version: version,
			Payload: fmt.Appendf(nil, `{"total":%d,"status":%q}`, c.total, c.status)}},
		events: []modelEvent{{version: version, content: c}}}
}

// remove is a step that publishes one delete of key.
func (r *modelRig) remove(key string, version int64) step {
	return step{key: key,
		changes: []ingest.Change{{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: key, Version: version, Delete: true}},
		events:  []modelEvent{{version: version, del: true}}}
}

// The model.

// content is what the mapping makes of a source record.
type content struct {
	total  int
	status string
}

func (c content) String() string { return fmt.Sprintf("%d/%s", c.total, c.status) }

// modelFlows are the flows under test, one per duplicate policy, each with
// its own target table; all read the same source entity.
var modelFlows = []struct{ name, policy, table string }{
	{"on-update", "update", "t_update"},
	{"on-skip", "skip", "t_skip"},
	{"on-error", "error", "t_error"},
}

type flowKey struct{ flow, key string }

// modelEntry is the model's ledger entry.
type modelEntry struct {
	version                         int64
	content                         content // zero for a delete
	state                           ledger.State
	lastEvent, lastAction, targetID string
}

type modelRow struct {
	content content
	version int64
}

type logWant struct{ action, status, code string }

// modelEvent is one event of one flow as it reaches the dedup stage (or
// the mapper's filter).
type modelEvent struct {
	id      string
	version int64
	del     bool
	content content
}

type modelLetter struct {
	flowKey
	event modelEvent
	stage string
	code  string
}

type model struct {
	entries map[flowKey]*modelEntry
	rows    map[flowKey]modelRow
	log     map[string]logWant // by event id and flow
	letters map[string]modelLetter
	blocked map[string]bool
}

func newModel() *model {
	return &model{entries: map[flowKey]*modelEntry{}, rows: map[flowKey]modelRow{}, log: map[string]logWant{},
		letters: map[string]modelLetter{}, blocked: map[string]bool{}}
}

func eventFlow(event, flow string) string { return event + "/" + flow }

// apply runs one event of one flow through the ledger's rules and the
// target, and reports whether the target refused it.
func (m *model) apply(fk flowKey, policy string, e modelEvent) (refused bool) {
	id := eventFlow(e.id, fk.flow)
	skip := func(code string) { m.log[id] = logWant{"skipped", "success", code} }
	if !e.del && e.content.status == "draft" {
		skip("filtered_out") // the mapper's filter: the ledger never sees it
		return false
	}
	cur, exists := m.entries[fk]
	failed := exists && cur.state == ledger.StateFailed
	// Older than the ledger: never applied, unless it is the content the
	// target refused last (a replay of the refused change).
	if exists && e.version < cur.version && !(failed && !e.del && e.content == cur.content) {
		skip("stale_version")
		return false
	}
	// A skip of a newer version raises the ledger's version.
	advance := func() {
		if !exists {
			m.entries[fk] = &modelEntry{version: e.version, state: ledger.StateApplied, lastAction: "deleted"}
			return
		}
		cur.version = max(cur.version, e.version)
	}
	inTarget := exists && cur.lastAction != "deleted"
	var action string
	switch {
	case e.del && !inTarget:
		skip("not_in_target")
		advance()
		return false
	case e.del:
		action = "deleted"
	case !inTarget, failed && cur.lastAction == "created":
		action = "created"
	case !failed && e.content == cur.content:
		skip("unchanged")
		advance()
		return false
	case policy == "skip":
		skip("duplicate")
		advance()
		return false
	case policy == "error":
		m.log[id] = logWant{"failed", "failure", "duplicate"}
		m.letters[id] = modelLetter{flowKey: fk, event: e, stage: "dedup", code: "duplicate"}
		return false
	default:
		action = "updated"
	}
	// A change: the ledger's entry becomes this event's, and the push goes
	// to the target with the ledger's version.
	version := e.version
	if exists {
		version = max(version, cur.version)
	}
	next := &modelEntry{version: version, content: e.content, state: ledger.StateApplied, lastEvent: e.id, lastAction: action, targetID: fk.key}
	if e.del {
		next.content = content{}
	}
	m.entries[fk] = next
	switch {
	case e.del:
		delete(m.rows, fk)
	case m.blocked[fk.key]:
		next.state = ledger.StateFailed
		m.log[id] = logWant{"failed", "failure", "target_rejected"}
		pushed := e
		pushed.version = version
		m.letters[id] = modelLetter{flowKey: fk, event: pushed, stage: "connector", code: "target_rejected"}
		return true
	default:
		// The target keeps the newest version it has.
		if row, ok := m.rows[fk]; !ok || row.version <= version {
			m.rows[fk] = modelRow{content: e.content, version: version}
		}
	}
	m.log[id] = logWant{action, "success", ""}
	return false
}

// The rig: the pipeline with the three flows, and readers of what it did.

type modelRig struct {
	t       *testing.T
	e       *env
	ledger  ledger.Store
	target  func(query string) error
	letters eventlogv1connect.DeadLetterServiceClient
	model   *model
	keys    []string
	// hashes learns the ledger's content hash of each content, and checks
	// that different contents never share one.
	hashes map[content]string
}

func newModelRig(t *testing.T, b backend) *modelRig {
	dir := t.TempDir()
	storeURL := b.storeURL(t)
	driver, dsn := b.target(t, dir)
	e := start(t, options{dir: dir, storeURL: storeURL, driver: driver, dsn: dsn})
	r := &modelRig{t: t, e: e, model: newModel(), hashes: map[content]string{}}
	ctx := context.Background()

	// The target's tables refuse writes of the keys in blocked, as a
	// trigger of a real system might: a refusal that a replay gets past once
	// the key is unblocked.
	ddl := []string{`CREATE TABLE blocked (k TEXT PRIMARY KEY)`}
	switch driver {
	case "sqlite":
		db, err := sql.Open("sqlite", dsn+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		r.target = func(q string) error { _, err := db.Exec(q); return err }
		for _, f := range modelFlows {
			ddl = append(ddl,
				fmt.Sprintf(`CREATE TABLE %s (external_ref TEXT PRIMARY KEY, total REAL, status TEXT, source_version INTEGER)`, f.table),
				fmt.Sprintf(`CREATE TRIGGER %[1]s_refuse_insert BEFORE INSERT ON %[1]s WHEN EXISTS (SELECT 1 FROM blocked WHERE k = NEW.external_ref) BEGIN SELECT RAISE(ABORT, 'blocked'); END`, f.table),
				fmt.Sprintf(`CREATE TRIGGER %[1]s_refuse_update BEFORE UPDATE ON %[1]s WHEN EXISTS (SELECT 1 FROM blocked WHERE k = NEW.external_ref) BEGIN SELECT RAISE(ABORT, 'blocked'); END`, f.table))
		}
	case "postgres":
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		r.target = func(q string) error { _, err := pool.Exec(ctx, q); return err }
		ddl = append(ddl, `CREATE FUNCTION refuse_blocked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM blocked WHERE k = NEW.external_ref) THEN RAISE EXCEPTION 'blocked'; END IF;
	RETURN NEW;
END $$`)
		for _, f := range modelFlows {
			ddl = append(ddl,
				fmt.Sprintf(`CREATE TABLE %s (external_ref TEXT PRIMARY KEY, total DOUBLE PRECISION, status TEXT, source_version BIGINT)`, f.table),
				fmt.Sprintf(`CREATE TRIGGER %[1]s_refuse BEFORE INSERT OR UPDATE ON %[1]s FOR EACH ROW EXECUTE FUNCTION refuse_blocked()`, f.table))
		}
	}
	for _, q := range ddl {
		if err := r.target(q); err != nil {
			t.Fatalf("preparing the target: %s: %v", q, err)
		}
	}

	resources := []*controlplanev1.Resource{
		resourceOf(t, "Tenant", "", "acme", map[string]any{}),
		resourceOf(t, "Integrator", "acme", "sync", map[string]any{}),
		resourceOf(t, "Endpoint", "acme", "shop", map[string]any{"type": "nats", "description": "webshop"}),
	}
	for _, f := range modelFlows {
		resources = append(resources,
			resourceOf(t, "Endpoint", "acme", "erp-"+f.policy, map[string]any{"type": "sql", "description": "ERP", "settings": map[string]any{
				"driver": driver, "dsn": dsn, "table": f.table}}),
			resourceOf(t, "Flow", "acme", f.name, map[string]any{
				"integrator": "sync", "source": "shop", "target": "erp-" + f.policy, "entity": "order", "duplicates": f.policy,
				"mapping": map[string]any{
					"filter":  `source.status != "draft"`,
					"fields":  map[string]any{"total": "double(source.total)", "status": "source.status"},
					"exclude": []any{"*"},
				},
			}))
	}
	if _, err := e.resource.Apply(ctx, &controlplanev1.ApplyRequest{Resources: resources}); err != nil {
		t.Fatalf("applying the flows: %v", err)
	}
	r.letters = eventlogv1connect.NewDeadLetterServiceClient(http.DefaultClient, e.in.APIURL(), connect.WithInterceptors(auth.Bearer(e.in.AdminToken())))

	// The ledger, read as the dedup stage's own store reads it.
	url := storeURL
	if url == "" {
		url = "sqlite:" + filepath.Join(dir, "ledger.db")
	}
	db, err := sqlstore.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if r.ledger, err = ledger.New(ctx, db); err != nil {
		t.Fatal(err)
	}
	return r
}

// step is what one key does in a round.
type step struct {
	key     string
	changes []ingest.Change
	events  []modelEvent // the published events, as the model sees them
	replay  *modelLetter
}

func (r *modelRig) run(rnd *rand.Rand, cases int) {
	for i := range cases {
		r.keys = append(r.keys, fmt.Sprintf("K%d", i))
	}
	const rounds = 8
	for round := range rounds {
		var steps []step
		for _, key := range r.keys {
			steps = append(steps, r.plan(rnd, key, round))
		}
		r.publish(steps)
		r.replay(steps)
		r.settle(fmt.Sprintf("round %d", round+1))
	}
}

// plan picks a key's step for a round and changes what the target refuses.
// A key whose push the target refuses publishes nothing more in the round,
// so that the model need not guess whether the refusal was recorded before
// the next event was decided.
func (r *modelRig) plan(rnd *rand.Rand, key string, round int) step {
	s := step{key: key}
	if rnd.IntN(8) == 0 {
		r.model.blocked[key] = !r.model.blocked[key]
		q := fmt.Sprintf(`DELETE FROM blocked WHERE k = '%s'`, key)
		if r.model.blocked[key] {
			q = fmt.Sprintf(`INSERT INTO blocked (k) VALUES ('%s')`, key)
		}
		if err := r.target(q); err != nil {
			r.t.Fatalf("blocking or unblocking %s: %v", key, err)
		}
	}
	var letters []modelLetter
	for _, l := range r.model.letters {
		if l.key == key {
			letters = append(letters, l)
		}
	}
	if len(letters) > 0 && rnd.IntN(3) == 0 {
		sort.Slice(letters, func(i, j int) bool { return letters[i].event.id+letters[i].flow < letters[j].event.id+letters[j].flow })
		l := letters[rnd.IntN(len(letters))]
		s.replay = &l
		return s
	}
	for range 1 + rnd.IntN(3) {
		// Versions move forward with the rounds, shuffled and repeated.
		e := modelEvent{version: int64(2*round + 1 + rnd.IntN(5))}
		c := ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: key, Version: e.version}
		if rnd.IntN(8) == 0 {
			e.del = true
			c.Delete = true
		} else {
			e.content = content{total: 10 * (1 + rnd.IntN(2)), status: []string{"paid", "shipped", "paid", "shipped", "draft"}[rnd.IntN(5)]}
			c.Payload = fmt.Appendf(nil, `{"total":%d,"status":%q}`, e.content.total, e.content.status)
		}
		s.changes = append(s.changes, c)
		s.events = append(s.events, e)
		if r.model.blocked[key] && !(e.del || e.content.status == "draft") {
			break // it may be refused
		}
	}
	return s
}

// publish publishes every key's changes, the first of each key, then the
// second..., and runs them through the model in the same order.
func (r *modelRig) publish(steps []step) {
	for i := 0; ; i++ {
		var changes []ingest.Change
		var at []int
		for j, s := range steps {
			if i < len(s.changes) {
				changes = append(changes, s.changes[i])
				at = append(at, j)
			}
		}
		if len(changes) == 0 {
			return
		}
		ids := r.e.publish(changes...)
		for n, j := range at {
			steps[j].events[i].id = ids[n]
			for _, f := range modelFlows {
				r.model.apply(flowKey{f.name, steps[j].key}, f.policy, steps[j].events[i])
			}
		}
	}
}

// replay replays the chosen dead letters, one per key, in one call.
func (r *modelRig) replay(steps []step) {
	var chosen []*modelLetter
	for _, s := range steps {
		if s.replay != nil {
			chosen = append(chosen, s.replay)
		}
	}
	if len(chosen) == 0 {
		return
	}
	ids := map[string]*modelLetter{}
	var req []string
	for _, l := range r.deadLetters() {
		for _, c := range chosen {
			if l.EventId == c.event.id && l.Flow == c.flow {
				ids[l.Id] = c
				req = append(req, l.Id)
			}
		}
	}
	if len(req) != len(chosen) {
		r.t.Fatalf("found %d of the %d dead letters to replay", len(req), len(chosen))
	}
	resp, err := r.letters.ReplayDeadLetters(context.Background(), &eventlogv1.ReplayDeadLettersRequest{Tenant: "acme", Ids: req})
	if err != nil {
		r.t.Fatalf("replaying: %v", err)
	}
	for _, rep := range resp.Replayed {
		l := ids[rep.Id]
		ev := l.event
		ev.id = rep.EventId
		policy := ""
		for _, f := range modelFlows {
			if f.name == l.flow {
				policy = f.policy
			}
		}
		r.model.apply(l.flowKey, policy, ev)
	}
}

func (r *modelRig) deadLetters() []*eventlogv1.DeadLetter {
	var out []*eventlogv1.DeadLetter
	req := &eventlogv1.ListDeadLettersRequest{Filter: &eventlogv1.DeadLetterFilter{Tenant: "acme"}, PageSize: 1000}
	for {
		resp, err := r.letters.ListDeadLetters(context.Background(), req)
		if err != nil {
			r.t.Fatalf("listing dead letters: %v", err)
		}
		out = append(out, resp.Letters...)
		if resp.NextPageToken == "" {
			return out
		}
		req.PageToken = resp.NextPageToken
	}
}

// settle waits until the pipeline agrees with the model, and fails with the
// differences when it does not.
func (r *modelRig) settle(when string) {
	r.t.Helper()
	eventually(r.t, 60*time.Second, func() string {
		if diff := r.diff(); len(diff) > 0 {
			if len(diff) > 12 {
				diff = append(diff[:12], fmt.Sprintf("… and %d more", len(diff)-12))
			}
			return fmt.Sprintf("after %s the pipeline differs from the model:\n%s", when, strings.Join(diff, "\n"))
		}
		return ""
	})
}

func (r *modelRig) diff() []string {
	var diff []string
	// The API log.
	got := map[string]logWant{}
	for _, rec := range r.e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme"}) {
		got[eventFlow(rec.EventId, rec.Flow)] = logWant{rec.Action, rec.Status, rec.Code}
	}
	for id, w := range r.model.log {
		if g, ok := got[id]; !ok {
			diff = append(diff, fmt.Sprintf("API log %s: missing, want %v", id, w))
		} else if g != w {
			diff = append(diff, fmt.Sprintf("API log %s: %v, want %v", id, g, w))
		}
	}
	for id, g := range got {
		if _, ok := r.model.log[id]; !ok {
			diff = append(diff, fmt.Sprintf("API log %s: unexpected %v", id, g))
		}
	}
	if len(diff) > 0 {
		return diff // the rest is still on its way
	}
	// The report counts what the log holds: a duplicate skipped by policy
	// as skipped, not as a failure.
	diff = append(diff, r.reportDiff()...)
	// The dead letters.
	letters := map[string]string{}
	for _, l := range r.deadLetters() {
		letters[eventFlow(l.EventId, l.Flow)] = l.GetStage() + " " + l.Code
	}
	for id, w := range r.model.letters {
		if g := letters[id]; g != w.stage+" "+w.code {
			diff = append(diff, fmt.Sprintf("dead letter %s: %q, want %q", id, g, w.stage+" "+w.code))
		}
	}
	if len(letters) != len(r.model.letters) {
		diff = append(diff, fmt.Sprintf("%d dead letters, want %d", len(letters), len(r.model.letters)))
	}
	// The target.
	for _, f := range modelFlows {
		rows := r.targetRows(f.table)
		for _, key := range r.keys {
			fk := flowKey{f.name, key}
			g, gok := rows[key]
			w, wok := r.model.rows[fk]
			if gok != wok || g != w {
				diff = append(diff, fmt.Sprintf("target %s/%s: %v (present %v), want %v (present %v)", f.table, key, g, gok, w, wok))
			}
		}
	}
	// The ledger.
	var keys []ledger.Key
	for _, f := range modelFlows {
		for _, key := range r.keys {
			keys = append(keys, ledger.Key{Tenant: "acme", Flow: f.name, SourceKey: key})
		}
	}
	entries, err := r.ledger.Lookup(context.Background(), keys)
	if err != nil {
		r.t.Fatalf("reading the ledger: %v", err)
	}
	for _, k := range keys {
		fk := flowKey{k.Flow, k.SourceKey}
		g, gok := entries[k]
		w, wok := r.model.entries[fk]
		switch {
		case gok != wok:
			diff = append(diff, fmt.Sprintf("ledger %s: present %v, want %v (%+v)", k, gok, wok, w))
		case !gok:
		case g.SourceVersion != w.version || g.State != w.state || g.LastEventID != w.lastEvent || g.LastAction != w.lastAction || g.TargetID != w.targetID:
			diff = append(diff, fmt.Sprintf("ledger %s: version %d, state %s, last event %q %s, target id %q; want version %d, state %s, last event %q %s, target id %q",
				k, g.SourceVersion, g.State, g.LastEventID, g.LastAction, g.TargetID, w.version, w.state, w.lastEvent, w.lastAction, w.targetID))
		default:
			if why := r.sameHash(w.content, g.ContentHash); why != "" {
				diff = append(diff, fmt.Sprintf("ledger %s: %s", k, why))
			}
		}
	}
	return diff
}

// counts are a flow's records by action, and its failures, as a report sums them.
type counts struct{ created, updated, deleted, skipped, failed, failures int64 }

func (r *modelRig) reportDiff() []string {
	resp, err := r.e.logs.Report(context.Background(), &eventlogv1.ReportRequest{Tenant: "acme"})
	if err != nil {
		r.t.Fatalf("reporting: %v", err)
	}
	got := map[string]counts{}
	for _, row := range resp.Rows {
		c := got[row.Flow]
		c.created += row.Created
		c.updated += row.Updated
		c.deleted += row.Deleted
		c.skipped += row.Skipped
		c.failed += row.Failed
		c.failures += row.Failures
		got[row.Flow] = c
	}
	want := map[string]counts{}
	for id, w := range r.model.log {
		flow := id[strings.LastIndex(id, "/")+1:]
		c := want[flow]
		switch w.action {
		case "created":
			c.created++
		case "updated":
			c.updated++
		case "deleted":
			c.deleted++
		case "skipped":
			c.skipped++
		case "failed":
			c.failed++
		}
		if w.status == "failure" {
			c.failures++
		}
		want[flow] = c
	}
	var diff []string
	for _, f := range modelFlows {
		if got[f.name] != want[f.name] {
			diff = append(diff, fmt.Sprintf("report of flow %s: %+v, want %+v", f.name, got[f.name], want[f.name]))
		}
	}
	return diff
}

// sameHash checks that the ledger's hash stands for the model's content.
func (r *modelRig) sameHash(c content, hash string) string {
	if c == (content{}) {
		if hash != "" {
			return fmt.Sprintf("content hash %q, want none", hash)
		}
		return ""
	}
	if h, ok := r.hashes[c]; ok {
		if h != hash {
			return fmt.Sprintf("content hash %q, want %q, the hash of %s", hash, h, c)
		}
		return ""
	}
	for other, h := range r.hashes {
		if h == hash {
			return fmt.Sprintf("content %s has the hash of %s", c, other)
		}
	}
	r.hashes[c] = hash
	return ""
}

// targetRows reads a target table by key.
func (r *modelRig) targetRows(table string) map[string]modelRow {
	out := map[string]modelRow{}
	q := fmt.Sprintf(`SELECT external_ref, total, status, source_version FROM %s`, table)
	scan := func(next func() bool, scan func(...any) error) {
		for next() {
			var key string
			var total float64
			var row modelRow
			if err := scan(&key, &total, &row.content.status, &row.version); err != nil {
				r.t.Fatalf("reading %s: %v", table, err)
			}
			row.content.total = int(total)
			out[key] = row
		}
	}
	switch r.e.driver {
	case "sqlite":
		db, err := sql.Open("sqlite", r.e.dsn)
		if err != nil {
			r.t.Fatal(err)
		}
		defer db.Close()
		rs, err := db.Query(q)
		if err != nil {
			r.t.Fatalf("reading %s: %v", table, err)
		}
		defer rs.Close()
		scan(rs.Next, rs.Scan)
	case "postgres":
		pool, err := pgxpool.New(context.Background(), r.e.dsn)
		if err != nil {
			r.t.Fatal(err)
		}
		defer pool.Close()
		rs, err := pool.Query(context.Background(), q)
		if err != nil {
			r.t.Fatalf("reading %s: %v", table, err)
		}
		defer rs.Close()
		scan(rs.Next, rs.Scan)
	}
	return out
}
