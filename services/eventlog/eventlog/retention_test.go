package eventlog

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/natstest"
	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/services/eventlog/apilog"
	"github.com/syncline/syncline/services/eventlog/deadletter"
)

// TestRetentionSweepsPerTenant: each tenant keeps its API log and dead
// letters for its own retention (30 days unless it says), no longer.
func TestRetentionSweepsPerTenant(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Run(t)
	nc, js := natstest.Connect(t, srv)
	db, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "eventlog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	logs, err := apilog.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	letters, err := deadletter.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Deps{Conn: nc, JetStream: js, Log: logs, DeadLetters: letters, Bus: bus.DefaultConfig(), Flows: flowconfig.NewWatcher(nil, nil).Index(),
		Retention: func() map[string]time.Duration { return map[string]time.Duration{"acme": 24 * time.Hour, "globex": 0} }})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var recs []apilog.Record
	var dead []deadletter.Letter
	// "_" has records (events of no known tenant) but no flow config.
	for _, tenant := range []string{"acme", "globex", "_"} {
		for i, age := range []time.Duration{time.Hour, 3 * 24 * time.Hour, 40 * 24 * time.Hour} {
			at := now.Add(-age)
			recs = append(recs, apilog.Record{Tenant: tenant, EventID: tenant + string(rune('a'+i)), Flow: "orders",
				Action: apilog.ActionCreated, Status: apilog.StatusSuccess, LoggedAt: at})
			dead = append(dead, deadletter.Letter{Tenant: tenant, ID: tenant + string(rune('a'+i)), DeadAt: at})
		}
	}
	if err := logs.Insert(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := letters.Insert(ctx, dead); err != nil {
		t.Fatal(err)
	}
	records, gone := s.sweep(ctx, now)
	// acme keeps a day: two of three go; globex keeps 30 days: one goes;
	// "_" keeps the default, 30 days: one goes.
	if records != 4 || gone != 4 {
		t.Fatalf("sweep removed %d log records and %d dead letters, want 4 and 4", records, gone)
	}
	for tenant, want := range map[string]int{"acme": 1, "globex": 2, "_": 2} {
		page, err := logs.Query(ctx, apilog.Query{Tenant: tenant})
		if err != nil || len(page.Records) != want {
			t.Errorf("tenant %s keeps %d log records (%v), want %d", tenant, len(page.Records), err, want)
		}
		lp, err := letters.List(ctx, deadletter.Filter{Tenant: tenant})
		if err != nil || len(lp.Letters) != want {
			t.Errorf("tenant %s keeps %d dead letters (%v), want %d", tenant, len(lp.Letters), err, want)
		}
	}
	if records, gone := s.sweep(ctx, now); records+gone != 0 {
		t.Errorf("a second sweep removed %d more", records+gone)
	}
}
