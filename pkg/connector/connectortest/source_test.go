package connectortest_test

import (
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/connector/connectortest"
)

func TestMemorySourceKeepsTheContract(t *testing.T) {
	src := connectortest.NewMemorySource(4)
	connectortest.RunSource(t, connectortest.SourceHarness{
		Open:   func(*testing.T) connector.Source { return src },
		Entity: "customer",
		Put: func(_ *testing.T, key string, fields map[string]string, at time.Time) {
			src.Put(key, fields, at)
		},
		Delete: func(_ *testing.T, key string, at time.Time) { src.Delete(key, at) },
		Reset:  func(*testing.T) { src.Reset() },
	})
}
