// Command syncline is Syncline's command line: `syncline dev` runs the whole
// platform in one process; apply, get, delete, token, publish, logs and report talk
// to a running one.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot(os.Stdin, os.Stdout, os.Stderr).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "syncline:", err)
		os.Exit(1)
	}
}
