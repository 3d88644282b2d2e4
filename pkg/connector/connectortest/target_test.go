package connectortest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/connector/connectortest"
)

// memoryTarget is the smallest target that keeps the contract; the suite must pass on it, so a
// failing connector is failing the contract, not the suite.
type memoryTarget struct {
	mu   sync.Mutex
	rows map[string]map[string]string // key -> field -> value
}

func (m *memoryTarget) Push(ctx context.Context, _ string, records []connector.Record) ([]connector.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pushing: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	results := make([]connector.Result, len(records))
	for i, r := range records {
		if r.Op == connector.OpDelete {
			delete(m.rows, r.Key)
			continue
		}
		var fields map[string]any
		if err := json.Unmarshal(r.Payload, &fields); err != nil {
			results[i].Err = fmt.Errorf("record %q: decoding the payload: %w", r.Key, err)
			continue
		}
		if _, ok := fields["refuse"]; ok {
			results[i].Err = fmt.Errorf("record %q: field refuse is not allowed", r.Key)
			continue
		}
		row := map[string]string{}
		for k, v := range fields {
			row[k] = fmt.Sprint(v)
		}
		m.rows[r.Key] = row
		results[i].TargetID = "mem-" + r.Key
	}
	return results, nil
}

func (m *memoryTarget) Close() error { return nil }

func (m *memoryTarget) Keys(context.Context, string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Collect(maps.Keys(m.rows)), nil
}

func (m *memoryTarget) Fields(_ context.Context, _, key string) (map[string]string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	row, ok := m.rows[key]
	return maps.Clone(row), ok, nil
}

func TestRunTargetPassesOnAConformingTarget(t *testing.T) {
	connectortest.RunTarget(t, func(t *testing.T) connectortest.Fixture {
		m := &memoryTarget{rows: map[string]map[string]string{}}
		return connectortest.Fixture{Target: m, Reader: m, Refused: json.RawMessage(`{"refuse": true}`)}
	})
}
