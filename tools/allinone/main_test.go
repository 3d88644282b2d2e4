package allinone_test

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/syncline/syncline/connectors/rest/jsonservertest"
	"github.com/syncline/syncline/connectors/tryton/trytontest"
	"github.com/syncline/syncline/pkg/browsertest"
)

// peers are the real systems the package's tests write to, started on first
// use (most tests need none) and stopped when the package's tests end: one
// of each per package.
var peers struct {
	tryton    sync.Once
	trytonSrv *trytontest.Server
	trytonErr error

	shop    sync.Once
	shopSrv *jsonservertest.Server
	shopErr error
}

// shopServer returns the package's json-server, starting it on first use. Each test that
// uses it resets it to its own state.
func shopServer(t *testing.T) *jsonservertest.Server {
	t.Helper()
	peers.shop.Do(func() { peers.shopSrv, peers.shopErr = jsonservertest.Start() })
	if peers.shopErr != nil {
		t.Fatalf("starting json-server: %v", peers.shopErr)
	}
	return peers.shopSrv
}

// trytonServer returns the package's Tryton server, starting it on first use.
func trytonServer(t *testing.T) *trytontest.Server {
	t.Helper()
	peers.tryton.Do(func() { peers.trytonSrv, peers.trytonErr = trytontest.Start() })
	if peers.trytonErr != nil {
		t.Fatalf("starting Tryton: %v", peers.trytonErr)
	}
	return peers.trytonSrv
}

func TestMain(m *testing.M) {
	code := m.Run()
	if peers.shopSrv != nil {
		peers.shopSrv.Stop()
	}
	if err := browsertest.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping Chromium: %v\n", err)
	}
	if peers.trytonSrv != nil {
		if err := peers.trytonSrv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping Tryton: %v\n", err)
		}
	}
	os.Exit(code)
}
