package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	sqlconn "github.com/syncline/syncline/connectors/sql"
	"github.com/syncline/syncline/pkg/bus"
	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/mapping"
	"github.com/syncline/syncline/pkg/natstest"
	"github.com/syncline/syncline/pkg/pgtest"
	"github.com/syncline/syncline/pkg/poll"
	"github.com/syncline/syncline/services/connector/connector"
)

// TestPollMovesToAnotherReplica polls a PostgreSQL table with the sql source from one
// replica, stops that replica while its poll pages through the table (as a redeploy does),
// and has another replica, on the same bus, read on from the stored cursor: every row
// reaches the ingest stream once, and rows changed meanwhile at their new version.
func TestPollMovesToAnotherReplica(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	const n = 3000
	for _, q := range []string{
		`CREATE TABLE orders (id bigint PRIMARY KEY, number text NOT NULL, updated_at timestamptz NOT NULL)`,
		// Seven rows share each time: ties across page boundaries.
		fmt.Sprintf(`INSERT INTO orders SELECT i, 'SO-' || i, timestamptz '2026-05-01 09:00:00+00' + (i / 7) * interval '1 millisecond' FROM generate_series(1, %d) i`, n),
		`CREATE INDEX ON orders (updated_at, id)`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	s := natstest.Run(t)
	_, js := natstest.Connect(t, s)
	cfg := bus.DefaultConfig()
	cfg.Partitions = 1
	if err := bus.EnsureStreams(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	reg := sdk.NewRegistry()
	if err := sqlconn.Register(reg); err != nil {
		t.Fatal(err)
	}
	kv, err := flowconfig.OpenBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	w := flowconfig.NewWatcher(kv, nil)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	f := &flowconfig.Flow{Tenant: "acme", Name: "orders", Generation: 1, Entity: "order", Integrator: "sync",
		Source: flowconfig.Endpoint{Name: "shop", Type: "sql", Settings: map[string]any{"driver": "postgres", "dsn": dsn, "table": "orders",
			"poll": map[string]any{"order": map[string]any{"change_column": "updated_at", "page_size": 50, "settle": "0s"}}}},
		Target:   flowconfig.Endpoint{Name: "erp", Type: "sql", Settings: map[string]any{"driver": "sqlite", "dsn": "erp.db", "table": "orders"}},
		Mapping:  mapping.Spec{Fields: map[string]string{"number": "source.number"}},
		Schedule: &poll.Spec{Mode: poll.ModeInterval, Every: "1s", Jitter: "0s"}, Stage: flowconfig.StageActive}
	b, err := flowconfig.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, f.Key(), b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the index never saw the flow", func() bool { return w.Index().Get("acme", "orders") != nil })
	egress, err := sdk.NewEgress(sdk.EgressConfig{Allow: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	replica := func() *connector.Service {
		svc, err := connector.New(connector.Deps{JetStream: js, Flows: w.Index(), Connectors: reg, Bus: cfg, Egress: egress})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svc.Stop(context.Background()) })
		return svc
	}
	r := &rig{t: t, js: js}
	src := poll.Source{Tenant: "acme", Endpoint: "shop", Entity: "order"}
	store := poll.NewStore(js, 1)

	first := replica()
	var st poll.State
	waitFor(t, "the first replica never stored a cursor", func() bool {
		st, _, err = store.Get(ctx, src)
		return err == nil && st.Changes >= 500
	})
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	st, _, err = store.Get(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if st.Outcome != poll.OutcomeRunning || st.Total >= n {
		t.Fatalf("after the stop the state is %+v: the poll was not cut off mid-way", st)
	}
	t.Logf("first replica stopped after %d of %d rows", st.Total, n)
	st0 := st
	// Meanwhile rows change: a changed row is read at its new version.
	if _, err := db.Exec(ctx, `UPDATE orders SET number = number || '-changed', updated_at = now() WHERE id % 500 = 0`); err != nil {
		t.Fatal(err)
	}
	replica()
	waitFor(t, "the second replica never read to the end", func() bool {
		st, _, err = store.Get(ctx, src)
		return err == nil && st.Outcome == poll.OutcomeOK
	})
	latest := map[string]string{}
	for _, c := range r.ingested() {
		var rec struct{ Number string }
		if err := json.Unmarshal([]byte(c.payload), &rec); err != nil {
			t.Fatal(err)
		}
		if prev, ok := latest[c.key]; !ok || len(rec.Number) > len(prev) {
			latest[c.key] = rec.Number
		}
	}
	if len(latest) != n {
		t.Fatalf("the ingest stream holds changes of %d rows, want %d", len(latest), n)
	}
	for i := 1; i <= n; i++ {
		want := "SO-" + strconv.Itoa(i)
		if i%500 == 0 {
			want += "-changed"
		}
		if got := latest[strconv.Itoa(i)]; got != want {
			t.Fatalf("row %d's last change read holds %q, want %q", i, got, want)
		}
	}
	// A changed row is on the stream twice when its first version was read before it
	// changed, and once, at its new version, when not.
	readBefore := int(st0.Total) / 500
	if got := len(r.ingested()); got < n+readBefore || got > n+n/500 {
		t.Errorf("the ingest stream holds %d changes, want every row once and the %d changed rows read before they changed once more (at most %d)", got, readBefore, n+n/500)
	}
}
