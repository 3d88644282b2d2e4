package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/natsauth"
)

// The burst's orders are published by a process of their own, as a source
// system would, so that the CPU time the run measures in the process under
// test is that process's alone: neither Syncline's nor the bare relay's
// figure includes building and publishing the orders. The publisher's own
// CPU time is reported beside them.

// envPublishToken carries the token a publisher process connects with.
const envPublishToken = "SYNCLINE_BENCH_PUBLISH_TOKEN"

// publishElsewhere runs a publisher process for kind ("ingest": orders as
// changes through pkg/ingest, on Syncline's NATS through its authorization
// with token; "relay": the same orders' bytes into the bare relay's first
// stream) and waits until it has published events. It returns the
// process's CPU time.
func publishElsewhere(ctx context.Context, kind, url, token string, events, batch int) (time.Duration, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, self, "-publisher", kind, "-publish-url", url,
		"-events", strconv.Itoa(events), "-batch", strconv.Itoa(batch))
	cmd.Env = append(os.Environ(), envPublishToken+"="+token)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("publishing the burst: %w", err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, nil
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// publisherChild is the publisher process of publishElsewhere.
func publisherChild(ctx context.Context, f flags) error {
	var opts []nats.Option
	if token := os.Getenv(envPublishToken); token != "" {
		opts = natsauth.ClientOptions(token)
	}
	nc, err := nats.Connect(f.publishURL, append(opts, nats.Name("loadgen publisher"))...)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", f.publishURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		return err
	}
	switch f.publisher {
	case "ingest":
		return burst(ctx, ingest.NewPublisher(js, nil), f.events, f.batch)
	case "relay":
		return relayPublish(ctx, js, f.events, f.batch)
	}
	return fmt.Errorf("-publisher %q: use ingest or relay", f.publisher)
}
