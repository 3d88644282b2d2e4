package rest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncline/syncline/connectors/rest"
	"github.com/syncline/syncline/connectors/rest/jsonservertest"
	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/connector/connectortest"
)

// stamp writes a change time as the shop does: RFC 3339 in UTC with milliseconds, so that
// json-server, which compares the text, orders them as times.
func stamp(at time.Time) string { return at.UTC().Format("2006-01-02T15:04:05.000Z") }

// pollSettings are the settings of a shop whose customers json-server serves, polled with
// pagination in pages of pageSize.
func pollSettings(baseURL, pagination string, pageSize int, extra map[string]any) map[string]any {
	source := map[string]any{
		"changed_field": "updatedAt",
		"since_param":   "updatedAt_gte",
		"sort":          map[string]any{"_sort": "updatedAt,id", "_order": "asc,asc"},
		"deleted_field": "deleted",
		"page_size":     pageSize,
		"pagination":    pagination,
	}
	maps.Copy(source, extra)
	return map[string]any{
		"base_url": baseURL,
		"timeout":  "10s",
		"entities": map[string]any{"customer": map[string]any{"path": "/customers", "source": source}},
	}
}

// openSource opens a rest source through the registry, as the connector service does.
func openSource(t *testing.T, settings map[string]any, env connector.Env) connector.Source {
	t.Helper()
	src, err := registry(t).OpenSource(context.Background(), rest.Type, settings, env)
	if err != nil {
		t.Fatalf("opening the rest source: %v", err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// putCustomer makes the shop's customer key hold fields, changed at at.
func putCustomer(t *testing.T, key string, fields map[string]string, at time.Time) {
	t.Helper()
	item := map[string]any{"id": key, "updatedAt": stamp(at)}
	for k, v := range fields {
		item[k] = v
	}
	peer.Put(t, jsonservertest.Auth{}, "customers", item)
}

func TestSourceConformance(t *testing.T) {
	for _, pagination := range []string{rest.PagePages, rest.PageOffset, rest.PageLink} {
		t.Run(pagination, func(t *testing.T) {
			connectortest.RunSource(t, connectortest.SourceHarness{
				Open: func(t *testing.T) connector.Source {
					return openSource(t, pollSettings(peer.URL, pagination, 4, nil), localEnv(t, nil))
				},
				Entity: "customer",
				Put:    putCustomer,
				Delete: func(t *testing.T, key string, at time.Time) {
					peer.Put(t, jsonservertest.Auth{}, "customers", map[string]any{"id": key, "deleted": true, "updatedAt": stamp(at)})
				},
				Reset: func(t *testing.T) {
					peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{"customers": nil}})
				},
			})
		})
	}
}

// readAll reads from cursor until the source has no more, calling between (when set) after
// each page.
func readAll(t *testing.T, src connector.Source, cursor string, between func(page int)) ([]connector.Change, string) {
	t.Helper()
	var all []connector.Change
	for n := 1; n < 1000; n++ {
		p, err := src.Read(context.Background(), "customer", cursor)
		if err != nil {
			t.Fatalf("reading page %d from %q: %v", n, cursor, err)
		}
		all = append(all, p.Changes...)
		cursor = p.Cursor
		if !p.More {
			return all, cursor
		}
		if between != nil {
			between(n)
		}
	}
	t.Fatal("the source never ran out of pages")
	return nil, ""
}

// checkRead checks that changes hold every record of want (key -> name) at its last change,
// and no change twice.
func checkRead(t *testing.T, changes []connector.Change, want map[string]string) {
	t.Helper()
	last := map[string]connector.Change{}
	seen := map[string]bool{}
	for _, c := range changes {
		id := c.Key + "@" + strconv.FormatInt(c.Version, 10)
		if seen[id] {
			t.Errorf("change %s was read twice", id)
		}
		seen[id] = true
		if prev, ok := last[c.Key]; ok && prev.Version > c.Version {
			t.Errorf("record %s: version %d read after %d", c.Key, c.Version, prev.Version)
		}
		last[c.Key] = c
	}
	for key, name := range want {
		c, ok := last[key]
		if !ok {
			t.Errorf("record %s was never read", key)
			continue
		}
		if got := nameOf(t, c); got != name {
			t.Errorf("record %s: the last change read has name %q, want %q", key, got, name)
		}
	}
	if len(last) != len(want) {
		t.Errorf("read %d records, want %d", len(last), len(want))
	}
}

func nameOf(t *testing.T, c connector.Change) string {
	t.Helper()
	var rec map[string]any
	if err := json.Unmarshal(c.Payload, &rec); err != nil {
		t.Fatalf("record %s: %v", c.Key, err)
	}
	s, _ := rec["name"].(string)
	return s
}

// TestSourceRecordsChangedWhilePagingAreNotSkipped changes records between the pages of a
// poll: records already read move to the end of the updated-at order, which shifts every
// page after them by as many places. A reader that went on to page 2 (or offset 4) would
// skip the records that shifted onto page 1.
func TestSourceRecordsChangedWhilePagingAreNotSkipped(t *testing.T) {
	for _, pagination := range []string{rest.PagePages, rest.PageOffset, rest.PageLink} {
		t.Run(pagination, func(t *testing.T) {
			peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{"customers": nil}})
			at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			want := map[string]string{}
			for i := 1; i <= 20; i++ {
				key := fmt.Sprintf("c%02d", i)
				want[key] = "v1 " + key
				putCustomer(t, key, map[string]string{"name": want[key]}, at.Add(time.Duration(i)*time.Second))
			}
			src := openSource(t, pollSettings(peer.URL, pagination, 4, nil), localEnv(t, nil))
			clock := at.Add(time.Hour)
			changes, _ := readAll(t, src, "", func(page int) {
				if page > 2 {
					return
				}
				// Change three records read already and one not read yet.
				for _, key := range []string{fmt.Sprintf("c%02d", page*4-3), fmt.Sprintf("c%02d", page*4-1), fmt.Sprintf("c%02d", page*4), fmt.Sprintf("c%02d", page*4+6)} {
					clock = clock.Add(time.Second)
					want[key] = "v2 " + key
					putCustomer(t, key, map[string]string{"name": want[key]}, clock)
				}
			})
			checkRead(t, changes, want)
		})
	}
}

// shifter is a proxy in front of json-server that runs a change once, just before it
// forwards the nth request: a record that changes while a Read steps through its pages.
type shifter struct {
	mu     sync.Mutex
	n      int
	at     int
	change func()
}

func (s *shifter) start(t *testing.T, at int, change func()) string {
	t.Helper()
	target, err := url.Parse(peer.URL)
	if err != nil {
		t.Fatal(err)
	}
	s.at, s.change = at, change
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := newAPI(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		s.mu.Lock()
		s.n++
		if s.n == s.at {
			s.change()
		}
		s.mu.Unlock()
		proxy.ServeHTTP(w, r)
	})
	return srv.URL
}

// TestSourceShiftWhileSteppingThroughATieIsNotSkipped makes more records share one change
// time than fit in a page, so that a Read steps through them page by page, and changes one
// already read between two of its requests: the rest of the group shifts back by one place.
// The Read must notice and read again, not go on from the next page and miss the record that
// shifted onto the page before.
func TestSourceShiftWhileSteppingThroughATieIsNotSkipped(t *testing.T) {
	// With a tie of 6, the page after the shift ends in later records, so that a Read that
	// took it would move its cursor past the record that shifted; with a tie of 9, the
	// third Read jumps to the page it left off at.
	for _, tie := range []int{6, 9} {
		for _, pagination := range []string{rest.PagePages, rest.PageOffset, rest.PageLink} {
			t.Run(fmt.Sprintf("%s/tie %d", pagination, tie), func(t *testing.T) {
				shiftWhileStepping(t, pagination, tie)
			})
		}
	}
}

func shiftWhileStepping(t *testing.T, pagination string, tie int) {
	peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{"customers": nil}})
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	want := map[string]string{}
	for i := 1; i <= 13; i++ {
		key := fmt.Sprintf("c%02d", i)
		want[key] = "v1 " + key
		when := at
		if i > tie {
			when = at.Add(time.Duration(i) * time.Second)
		}
		putCustomer(t, key, map[string]string{"name": want[key]}, when)
	}
	var sh shifter
	// Request 1 reads c01-c04; request 2 (the second Read) finds them all read and
	// steps on; c02 changes before request 3 answers the next page.
	base := sh.start(t, 3, func() {
		want["c02"] = "v2 c02"
		putCustomer(t, "c02", map[string]string{"name": want["c02"]}, at.Add(time.Hour))
	})
	src := openSource(t, pollSettings(base, pagination, 4, nil), localEnv(t, nil))
	changes, _ := readAll(t, src, "", nil)
	checkRead(t, changes, want)
}

// TestSourceLargeTieThatShrankBetweenReads reads two pages of fourteen records changed at
// one moment, then changes five of those read, which leaves the group: the records not read
// yet move up five places. A Read that went on from the page (or offset) where the last
// one left off would start past the first of them.
func TestSourceLargeTieThatShrankBetweenReads(t *testing.T) {
	for _, pagination := range []string{rest.PagePages, rest.PageOffset, rest.PageLink} {
		t.Run(pagination, func(t *testing.T) {
			peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{"customers": nil}})
			at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			want := map[string]string{}
			for i := 1; i <= 14; i++ {
				key := fmt.Sprintf("c%02d", i)
				want[key] = "v1 " + key
				putCustomer(t, key, map[string]string{"name": want[key]}, at)
			}
			src := openSource(t, pollSettings(peer.URL, pagination, 4, nil), localEnv(t, nil))
			changes, _ := readAll(t, src, "", func(page int) {
				if page != 2 {
					return
				}
				for i := 1; i <= 5; i++ {
					key := fmt.Sprintf("c%02d", i)
					want[key] = "v2 " + key
					putCustomer(t, key, map[string]string{"name": want[key]}, at.Add(time.Duration(i)*time.Second))
				}
			})
			checkRead(t, changes, want)
		})
	}
}

// TestSourceTieAcrossAPageBoundary reads six records changed at one moment in pages of four,
// with the change time written each way the settings know: every record once, and a record
// changed after the read is read again.
func TestSourceTieAcrossAPageBoundary(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		format string
		stamp  func(time.Time) any
	}{
		{rest.ChangedRFC3339, func(t time.Time) any { return stamp(t) }},
		{rest.ChangedUnix, func(t time.Time) any { return t.Unix() }},
		{rest.ChangedUnixMS, func(t time.Time) any { return t.UnixMilli() }},
	} {
		t.Run(tt.format, func(t *testing.T) {
			peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{"customers": nil}})
			put := func(key, name string, when time.Time) {
				peer.Put(t, jsonservertest.Auth{}, "customers", map[string]any{"id": key, "name": name, "updatedAt": tt.stamp(when)})
			}
			for _, key := range []string{"a", "b", "c", "d", "e", "f"} {
				put(key, "tie "+key, at)
			}
			src := openSource(t, pollSettings(peer.URL, rest.PagePages, 4, map[string]any{"changed_format": tt.format}), localEnv(t, nil))
			first, err := src.Read(context.Background(), "customer", "")
			if err != nil {
				t.Fatal(err)
			}
			if len(first.Changes) != 4 || !first.More {
				t.Fatalf("the first page has %d changes, more %t; want 4 and more", len(first.Changes), first.More)
			}
			for _, c := range first.Changes {
				if c.Version != at.UnixMicro() || !c.OccurredAt.Equal(at) {
					t.Errorf("record %s: version %d at %s, want %d at %s", c.Key, c.Version, c.OccurredAt, at.UnixMicro(), at)
				}
			}
			second, err := src.Read(context.Background(), "customer", first.Cursor)
			if err != nil {
				t.Fatal(err)
			}
			if keys := changeKeys(second.Changes); keys != "e f" || second.More {
				t.Fatalf("the second page has %q, more %t; want e f and no more", keys, second.More)
			}
			again, err := src.Read(context.Background(), "customer", second.Cursor)
			if err != nil || len(again.Changes) != 0 || again.More {
				t.Fatalf("reading from the end: %v, %v; want nothing", changeKeys(again.Changes), err)
			}
			put("b", "changed", at.Add(2*time.Second))
			later, err := src.Read(context.Background(), "customer", second.Cursor)
			if err != nil || changeKeys(later.Changes) != "b" || later.Changes[0].Version != at.Add(2*time.Second).UnixMicro() {
				t.Fatalf("after b changed: %q, %v; want b at its new time", changeKeys(later.Changes), err)
			}
		})
	}
}

func changeKeys(changes []connector.Change) string {
	s := ""
	for i, c := range changes {
		if i > 0 {
			s += " "
		}
		s += c.Key
	}
	return s
}

// TestSourceDeletedFlagIsADelete reads a record the shop marks deleted as a delete.
func TestSourceDeletedFlagIsADelete(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{"customers": {
		{"id": "1", "name": "Ada", "updatedAt": stamp(at)},
		{"id": "2", "name": "Bob", "updatedAt": stamp(at.Add(time.Second)), "deleted": true},
		{"id": "3", "name": "Cy", "updatedAt": stamp(at.Add(2 * time.Second)), "deleted": "2026-03-01T12:00:02Z"},
		{"id": "4", "name": "Di", "updatedAt": stamp(at.Add(3 * time.Second)), "deleted": false},
	}}})
	src := openSource(t, pollSettings(peer.URL, rest.PageOffset, 10, nil), localEnv(t, nil))
	changes, _ := readAll(t, src, "", nil)
	got := map[string]bool{}
	for _, c := range changes {
		got[c.Key] = c.Delete
	}
	if want := map[string]bool{"1": false, "2": true, "3": true, "4": false}; !maps.Equal(got, want) {
		t.Fatalf("deletes read: %v, want %v", got, want)
	}
}

// TestSourceSendsItsCredentials reads from a shop that asks for credentials, with each kind
// of auth; without them the read fails saying so.
func TestSourceSendsItsCredentials(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name     string
		peerAuth jsonservertest.Auth
		settings map[string]any
	}{
		{"bearer", jsonservertest.Auth{Bearer: "s3cret"}, map[string]any{"auth": "bearer", "token": "s3cret"}},
		{"basic", jsonservertest.Auth{User: "sync", Password: "pw"}, map[string]any{"auth": "basic", "user": "sync", "password": "pw"}},
		{"api key", jsonservertest.Auth{Header: "X-Shop-Key", Key: "k1"}, map[string]any{"auth": "api_key", "token": "k1", "api_key_header": "X-Shop-Key"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			peer.Reset(t, jsonservertest.State{Auth: tt.peerAuth, DB: map[string][]map[string]any{"customers": {
				{"id": "1", "name": "Ada", "updatedAt": stamp(at)},
			}}})
			settings := pollSettings(peer.URL, rest.PagePages, 4, nil)
			_, err := openSource(t, settings, localEnv(t, nil)).Read(context.Background(), "customer", "")
			if err == nil || !contains(err.Error(), "401", "the API refused the credentials") {
				t.Fatalf("without credentials the read gave %v, want the API's refusal", err)
			}
			maps.Copy(settings, tt.settings)
			src := openSource(t, settings, localEnv(t, nil))
			if err := src.Check(context.Background()); err != nil {
				t.Fatalf("Check: %v", err)
			}
			changes, _ := readAll(t, src, "", nil)
			if changeKeys(changes) != "1" {
				t.Fatalf("read %q, want record 1", changeKeys(changes))
			}
		})
	}
}

// contains reports whether s holds every one of parts.
func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
