package connectortest

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/connector"
)

var sourceSeed = flag.Uint64("source.seed", 0, "seed of the source conformance model test (0: a new one)")

// SourceHarness is what RunSource needs of a source under test and its system.
type SourceHarness struct {
	// Open opens the source under test. Its page size should be small (3 to 5 changes), so
	// that a few dozen records cross many pages and their boundaries.
	Open func(t *testing.T) connector.Source
	// Entity is the entity the source is read for.
	Entity string
	// Put creates the record key, or changes it, to hold fields (string values), stamped as
	// changed at at. Times never go back: records changed together share one often (ties),
	// a change made after a Read is later than every record that Read could see, and one
	// key's changes always have later times. A source ordered by a sequence of its own may
	// ignore at.
	Put func(t *testing.T, key string, fields map[string]string, at time.Time)
	// Delete marks the record key deleted at at; nil for a source that does not report
	// deletes.
	Delete func(t *testing.T, key string, at time.Time)
	// Reset removes every record, before each test of the suite.
	Reset func(t *testing.T)
}

// RunSource runs the conformance suite for sources: reading from the beginning, reading on
// from a cursor, ties across a page boundary, and a model test of random changes made
// while the source is being read, with pages whose cursor is lost (a poll cut off), which
// must then be read again.
func RunSource(t *testing.T, h SourceHarness) {
	t.Run("EmptyReadsNothing", func(t *testing.T) {
		h.Reset(t)
		src := h.Open(t)
		defer src.Close()
		got, cursor := walk(t, src, h.Entity, "")
		if len(got) != 0 {
			t.Fatalf("an empty source read %d changes: %v", len(got), got)
		}
		if again, _ := walk(t, src, h.Entity, cursor); len(again) != 0 {
			t.Fatalf("an empty source read %d changes from its own cursor %q", len(again), cursor)
		}
	})
	t.Run("TiesAcrossPagesAreReadOnce", func(t *testing.T) {
		h.Reset(t)
		src := h.Open(t)
		defer src.Close()
		at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		// Twenty records changed at the same moment, then five later: every page
		// boundary falls inside the tie.
		for i := 1; i <= 20; i++ {
			h.Put(t, strconv.Itoa(i), map[string]string{"name": "tie " + strconv.Itoa(i)}, at)
		}
		for i := 21; i <= 25; i++ {
			h.Put(t, strconv.Itoa(i), map[string]string{"name": "later " + strconv.Itoa(i)}, at.Add(time.Duration(i)*time.Second))
		}
		got, cursor := walk(t, src, h.Entity, "")
		seen := map[string]int{}
		for _, c := range got {
			seen[c.Key]++
		}
		for i := 1; i <= 25; i++ {
			if n := seen[strconv.Itoa(i)]; n != 1 {
				t.Errorf("record %d was read %d times, want once", i, n)
			}
		}
		if len(got) != 25 {
			t.Errorf("read %d changes, want 25", len(got))
		}
		h.Put(t, "7", map[string]string{"name": "changed"}, at.Add(time.Minute))
		more, _ := walk(t, src, h.Entity, cursor)
		if len(more) != 1 || more[0].Key != "7" || field(t, more[0], "name") != "changed" {
			t.Fatalf("from the cursor after the first read, read %v, want record 7 changed", more)
		}
	})
	t.Run("BadCursorIsRefused", func(t *testing.T) {
		h.Reset(t)
		src := h.Open(t)
		defer src.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := src.Read(ctx, h.Entity, "not a cursor \x00 of this source"); err == nil {
			t.Fatal("a cursor the source never gave was taken")
		}
	})
	t.Run("Model", func(t *testing.T) {
		seed := *sourceSeed
		if seed == 0 {
			seed = rand.Uint64()
		}
		for round := range 3 {
			h.Reset(t)
			runSourceModel(t, h, seed+uint64(round))
			if t.Failed() {
				t.Logf("seed %d: rerun with -source.seed=%d", seed+uint64(round), seed+uint64(round))
				return
			}
		}
	})
}

// walk reads from cursor until the source says nothing more follows now.
func walk(t *testing.T, src connector.Source, entity, cursor string) ([]connector.Change, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var all []connector.Change
	for range 10000 {
		p, err := src.Read(ctx, entity, cursor)
		if err != nil {
			t.Fatalf("reading from cursor %q: %v", cursor, err)
		}
		all = append(all, p.Changes...)
		cursor = p.Cursor
		if !p.More {
			return all, cursor
		}
	}
	t.Fatalf("the source still had more after 10000 pages: its cursor does not move (last %q)", cursor)
	return nil, ""
}

func field(t *testing.T, c connector.Change, name string) string {
	t.Helper()
	var rec map[string]any
	if err := json.Unmarshal(c.Payload, &rec); err != nil {
		t.Fatalf("change of record %s: the payload is not a JSON object: %v", c.Key, err)
	}
	s, _ := rec[name].(string)
	return s
}

type modelRecord struct {
	fields  map[string]string
	deleted bool
}

// runSourceModel makes random changes between page reads and checks what was read
// against a plain model: after reading to the end, the last change read of every key is
// what the source holds; a key's changes are read in order; no change whose page's cursor
// was kept is read twice.
func runSourceModel(t *testing.T, h SourceHarness, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	src := h.Open(t)
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	model := map[string]modelRecord{}
	lastAt := map[string]time.Time{}
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	read := map[string]connector.Change{} // key -> last change read and kept
	kept := map[string]bool{}             // key/version read in a kept page
	cursor := ""
	// A change made after a read is stamped later than every record the read could see:
	// a clock does not go back. Changes made together share times often (ties).
	tick := false
	change := func() {
		if tick || rng.IntN(3) == 0 {
			tick = false
			clock = clock.Add(time.Duration(1+rng.IntN(3)) * time.Millisecond)
		}
		key := strconv.Itoa(1 + rng.IntN(30))
		if !lastAt[key].Before(clock) {
			clock = lastAt[key].Add(time.Millisecond)
		}
		lastAt[key] = clock
		if h.Delete != nil && rng.IntN(6) == 0 {
			if _, ok := model[key]; ok && !model[key].deleted {
				h.Delete(t, key, clock)
				model[key] = modelRecord{deleted: true}
				return
			}
		}
		f := map[string]string{"name": fmt.Sprintf("r%s v%d", key, rng.IntN(1000))}
		h.Put(t, key, f, clock)
		model[key] = modelRecord{fields: f}
	}
	for range 40 {
		change()
	}
	for step := range 200 {
		if rng.IntN(3) == 0 {
			for range 1 + rng.IntN(4) {
				change()
			}
		}
		p, err := src.Read(ctx, h.Entity, cursor)
		tick = true
		if err != nil {
			t.Fatalf("step %d: reading from cursor %q: %v", step, cursor, err)
		}
		if rng.IntN(8) == 0 {
			continue // the poll was cut off before the page was stored: read it again
		}
		for _, c := range p.Changes {
			id := c.Key + "/" + strconv.FormatInt(c.Version, 10)
			if kept[id] {
				t.Fatalf("step %d: change %s was read again after its page's cursor was kept", step, id)
			}
			kept[id] = true
			if prev, ok := read[c.Key]; ok && c.Version < prev.Version {
				t.Fatalf("step %d: record %s: version %d read after version %d", step, c.Key, c.Version, prev.Version)
			}
			read[c.Key] = c
		}
		cursor = p.Cursor
	}
	// Read to the end, with no more changes, and compare.
	rest, _ := walk(t, src, h.Entity, cursor)
	for _, c := range rest {
		if prev, ok := read[c.Key]; ok && c.Version < prev.Version {
			t.Fatalf("record %s: version %d read after version %d", c.Key, c.Version, prev.Version)
		}
		read[c.Key] = c
	}
	for key, want := range model {
		got, ok := read[key]
		switch {
		case !ok && want.deleted:
			// Made and deleted between two reads: nothing to tell.
		case !ok:
			t.Errorf("record %s was never read; it holds %v", key, want.fields)
		case want.deleted && !got.Delete:
			t.Errorf("record %s was deleted, and the last change read of it is not a delete", key)
		case !want.deleted && got.Delete:
			t.Errorf("record %s holds %v, and the last change read of it is a delete", key, want.fields)
		case !want.deleted && field(t, got, "name") != want.fields["name"]:
			t.Errorf("record %s holds name %q, and the last change read of it has %q", key, want.fields["name"], field(t, got, "name"))
		}
	}
	for key := range read {
		if _, ok := model[key]; !ok {
			t.Errorf("record %s was read, and it was never made", key)
		}
	}
}
