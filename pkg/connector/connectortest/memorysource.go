package connectortest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/syncline/syncline/pkg/connector"
)

var _ connector.Source = (*MemorySource)(nil)

// MemorySource is the smallest source that keeps the contract, in memory: records ordered by
// their change time and key, read keyset-wise from a cursor "<unix µs>:<key>". The suite
// passes on it, so a failing source is failing the contract, not the suite; the poller's
// rules are tested against it too.
type MemorySource struct {
	// PageSize is how many changes one Read returns at most.
	PageSize int

	mu   sync.Mutex
	rows map[string]memoryRow
	// Fail, when set, is the error every Read returns (a source that is down).
	fail error
}

type memoryRow struct {
	at      time.Time
	fields  map[string]string
	deleted bool
}

// NewMemorySource returns an empty source with pages of pageSize changes.
func NewMemorySource(pageSize int) *MemorySource {
	return &MemorySource{PageSize: pageSize, rows: map[string]memoryRow{}}
}

// Put creates or changes a record.
func (m *MemorySource) Put(key string, fields map[string]string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows[key] = memoryRow{at: at, fields: fields}
}

// Delete marks a record deleted.
func (m *MemorySource) Delete(key string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows[key] = memoryRow{at: at, deleted: true}
}

// Reset removes every record.
func (m *MemorySource) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows = map[string]memoryRow{}
}

// Fail makes every Read return err until Fail(nil).
func (m *MemorySource) Fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = err
}

// Read implements connector.Source.
func (m *MemorySource) Read(ctx context.Context, _, cursor string) (connector.Page, error) {
	if err := ctx.Err(); err != nil {
		return connector.Page{}, err
	}
	after, afterKey, err := parseMemoryCursor(cursor)
	if err != nil {
		return connector.Page{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return connector.Page{}, m.fail
	}
	type item struct {
		key string
		row memoryRow
	}
	var items []item
	for k, r := range m.rows {
		us := r.at.UnixMicro()
		if us > after || us == after && k > afterKey {
			items = append(items, item{k, r})
		}
	}
	slices.SortFunc(items, func(a, b item) int {
		return cmp.Or(a.row.at.Compare(b.row.at), strings.Compare(a.key, b.key))
	})
	page := connector.Page{Cursor: cursor, More: len(items) > m.PageSize}
	for _, it := range items[:min(len(items), m.PageSize)] {
		c := connector.Change{Key: it.key, Version: it.row.at.UnixMicro(), Delete: it.row.deleted, OccurredAt: it.row.at}
		if !it.row.deleted {
			rec := map[string]any{"id": it.key}
			for f, v := range it.row.fields {
				rec[f] = v
			}
			if c.Payload, err = json.Marshal(rec); err != nil {
				return connector.Page{}, err
			}
		}
		page.Changes = append(page.Changes, c)
		page.Cursor = strconv.FormatInt(c.Version, 10) + ":" + it.key
	}
	return page, nil
}

func parseMemoryCursor(c string) (int64, string, error) {
	if c == "" {
		return -1 << 62, "", nil
	}
	us, key, ok := strings.Cut(c, ":")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil {
		return 0, "", fmt.Errorf("cursor %q is not a memory source's (<unix µs>:<key>): poll from the beginning with an empty cursor", c)
	}
	return n, key, nil
}

// Check implements connector.Source.
func (m *MemorySource) Check(context.Context) error { return nil }

// Close implements connector.Source.
func (m *MemorySource) Close() error { return nil }
