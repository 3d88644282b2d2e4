package main

import (
	"testing"

	"github.com/syncline/syncline/pkg/daemon/daemontest"
)

func TestCommand(t *testing.T) { daemontest.CheckMain(t, spec, run) }
