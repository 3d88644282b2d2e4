package allinone_test

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/syncline/syncline/connectors/tryton/trytontest"
)

// peers are the real systems the package's tests write to, started on first
// use (most tests need none) and stopped when the package's tests end: one
// of each per package.
var peers struct {
	tryton    sync.Once
	trytonSrv *trytontest.Server
	trytonErr error
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
	if peers.trytonSrv != nil {
		if err := peers.trytonSrv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping Tryton: %v\n", err)
		}
	}
	os.Exit(code)
}
