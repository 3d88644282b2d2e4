package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"connectrpc.com/connect"

	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	ingestv1 "github.com/syncline/syncline/pkg/api/syncline/ingest/v1"
	"github.com/syncline/syncline/pkg/api/syncline/ingest/v1/ingestv1connect"
	"github.com/syncline/syncline/pkg/ingest"
)

// feeder publishes a webshop's records as change events and, when asked to, waits for
// their outcomes in the API log.
type feeder struct {
	shop   *shop
	source source
	pub    *ingest.Publisher
	ingest ingestv1connect.IngestServiceClient
	logs   eventlogv1connect.LogServiceClient
	// wait bounds the wait for a collection's outcomes; zero does not wait.
	wait time.Duration
	// poll is how often the API log is asked.
	poll time.Duration
	out  io.Writer
}

// errFailed says that some changes failed; the feeder has printed which and why.
var errFailed = errors.New("some changes failed (listed above)")

// feed publishes every collection in order. With a wait, each collection's changes must
// have their outcomes before the next one is read, so that a record finds in the target
// what it refers to. ctx bounds the whole feed.
func (f *feeder) feed(ctx context.Context, cs []collection) error {
	failed := false
	for _, c := range cs {
		ids, err := f.publish(ctx, c)
		if err != nil {
			return err
		}
		if f.wait == 0 || len(ids) == 0 {
			continue
		}
		outcomes, err := f.outcomes(ctx, c, ids)
		if err != nil {
			return err
		}
		if f.report(c, outcomes) {
			failed = true
		}
	}
	if failed {
		return errFailed
	}
	return nil
}

// publish reads collection c and publishes its records, returning the key of each event
// id. The ingest API checks them first, so that a change no flow reads is refused with
// what the tenant's flows do read, instead of being dead-lettered by the mapper.
func (f *feeder) publish(ctx context.Context, c collection) (map[string]string, error) {
	records, err := f.shop.records(ctx, c)
	if err != nil {
		return nil, err
	}
	changes := make([]ingest.Change, len(records))
	for i, raw := range records {
		if changes[i], err = f.source.change(c, i, raw); err != nil {
			return nil, err
		}
	}
	if len(changes) == 0 {
		fmt.Fprintf(f.out, "%s: no records\n", c.Name)
		return nil, nil
	}
	if err := f.check(ctx, c, changes); err != nil {
		return nil, err
	}
	ids := make(map[string]string, len(changes))
	// Batches of a page each keep a publish well under NATS's limits.
	for batch := range slices.Chunk(changes, f.shop.pageSize) {
		published, err := f.pub.Publish(ctx, batch...)
		if err != nil {
			return nil, fmt.Errorf("publishing the %s records: %w", c.Name, err)
		}
		for i, id := range published {
			ids[id] = batch[i].Key
		}
	}
	fmt.Fprintf(f.out, "%s: %d records published as %s changes\n", c.Name, len(changes), c.Entity)
	return ids, nil
}

func (f *feeder) check(ctx context.Context, c collection, changes []ingest.Change) error {
	req := &ingestv1.PublishRequest{CheckOnly: true}
	for _, ch := range changes {
		req.Changes = append(req.Changes, &ingestv1.Change{EventId: ch.EventID, Tenant: ch.Tenant, Endpoint: ch.Endpoint,
			Entity: ch.Entity, Key: ch.Key, Version: ch.Version, Record: string(ch.Payload)})
	}
	if _, err := f.ingest.Publish(ctx, req); err != nil {
		var ce *connect.Error
		if errors.As(err, &ce) {
			return fmt.Errorf("the ingest API refuses the %s records: %s", c.Name, ce.Message())
		}
		return fmt.Errorf("checking the %s records with the ingest API: %w", c.Name, err)
	}
	return nil
}

// outcomes waits until the API log has a record of every event of ids (event id -> key)
// and returns them by event id. It gives up after f.wait, naming what is missing.
func (f *feeder) outcomes(ctx context.Context, c collection, ids map[string]string) (map[string]*eventlogv1.LogRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, f.wait)
	defer cancel()
	got := map[string]*eventlogv1.LogRecord{}
	for {
		err := f.collect(ctx, c, ids, got)
		if err == nil && len(got) == len(ids) {
			return got, nil
		}
		if err != nil && ctx.Err() == nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, f.late(c, ids, got)
		case <-time.After(f.poll):
		}
	}
}

// collect adds to got the API log's records of the events of ids, newest first, reading
// pages of the entity's records until it has them all or the log ends.
func (f *feeder) collect(ctx context.Context, c collection, ids map[string]string, got map[string]*eventlogv1.LogRecord) error {
	req := &eventlogv1.QueryLogsRequest{Tenant: f.source.Tenant, Entity: c.Entity, PageSize: 1000}
	for len(got) < len(ids) {
		resp, err := f.logs.QueryLogs(ctx, req)
		if err != nil {
			var ce *connect.Error
			if errors.As(err, &ce) && ctx.Err() == nil {
				return fmt.Errorf("reading the API log: %s", ce.Message())
			}
			return fmt.Errorf("reading the API log: %w", err)
		}
		for _, r := range resp.Records {
			if _, ok := ids[r.EventId]; ok && got[r.EventId] == nil {
				got[r.EventId] = r
			}
		}
		if resp.NextPageToken == "" {
			return nil
		}
		req.PageToken = resp.NextPageToken
	}
	return nil
}

// late is the error of a wait that ran out: which records have no outcome yet, and where
// they may be.
func (f *feeder) late(c collection, ids map[string]string, got map[string]*eventlogv1.LogRecord) error {
	var keys []string
	for id, key := range ids {
		if got[id] == nil {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	return fmt.Errorf("%s: %d of %d changes have no outcome in the API log after %s (keys %s): a flow whose target is down is paused and holds its events until the target answers again (syncline get flows --tenant %s shows its state); the events are kept, and their outcomes follow",
		c.Name, len(keys), len(ids), f.wait, strings.Join(keys, ", "), f.source.Tenant)
}

// report prints what happened to a collection's changes and whether any failed.
func (f *feeder) report(c collection, outcomes map[string]*eventlogv1.LogRecord) (failed bool) {
	counts := map[string]int{}
	var failures []*eventlogv1.LogRecord
	for _, r := range outcomes {
		what := r.Action
		if r.Code != "" && r.Status == "success" {
			what += " (" + r.Code + ")"
		}
		counts[what]++
		if r.Status != "success" {
			failures = append(failures, r)
		}
	}
	var parts []string
	for what, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, what))
	}
	sort.Strings(parts)
	fmt.Fprintf(f.out, "%s: %s\n", c.Name, strings.Join(parts, ", "))
	sort.Slice(failures, func(i, j int) bool { return failures[i].RemoteId < failures[j].RemoteId })
	for _, r := range failures {
		fmt.Fprintf(f.out, "  %s %s failed in flow %s: %s (%s)\n", c.Entity, r.RemoteId, r.Flow, r.Reason, r.Code)
	}
	return len(failures) > 0
}
