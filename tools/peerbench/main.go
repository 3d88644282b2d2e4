// Command peerbench runs the peer benchmark of ../shared/peer-bench (see its
// README.md): Bento, the stream processor a user would pick instead of
// Syncline for "JetStream in, map, PostgreSQL out", on the load generator's
// 1 KiB orders, on this machine. For each mode it starts a fresh nats-server
// with JetStream (the binary given, the version Syncline embeds) on a random
// 127.0.0.1 port and a temporary store folder, a fresh PostgreSQL database
// with the peer bench's table, a file-backed stream ORDERS on orders.>, and
// Bento with the peer bench's pipeline; it publishes the orders before Bento
// starts ("preloaded") or while it runs ("live"), and reports events/s and
// the CPU time per event of Bento, the nats-server and PostgreSQL's server,
// and Bento's peak resident set.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
)

type flags struct {
	bento, natsServer, peerBench string
	events, batch                int
	modes, until                 string
}

func main() {
	var f flags
	flag.StringVar(&f.bento, "bento", os.Getenv("BENTO"), "the Bento binary built from the peer bench's bento-main.go (default: $BENTO)")
	flag.StringVar(&f.natsServer, "nats-server", os.Getenv("NATS_SERVER"), "the nats-server binary, the version in go.mod (default: $NATS_SERVER)")
	flag.StringVar(&f.peerBench, "peer-bench", "../shared/peer-bench", "the peer bench's folder: bento.yaml and table.sql")
	flag.IntVar(&f.events, "events", 100000, "orders to publish per mode")
	flag.IntVar(&f.batch, "batch", 500, "orders per publish batch (four publishers, async publish, as the load generator's burst)")
	flag.StringVar(&f.modes, "modes", "preloaded,live", "modes to run, comma-separated: preloaded (publish all, then start Bento), live (start Bento, then publish)")
	flag.StringVar(&f.until, "until", "acks", "when the run ends: acks (the consumer's ack floor reaches -events) or rows (count(*) of the table reaches -events, polled every 50 ms; the polls' scans are in PostgreSQL's CPU)")
	flag.Parse()

	if err := check(&f); err != nil {
		fmt.Fprintln(os.Stderr, "peerbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, f); err != nil {
		fmt.Fprintln(os.Stderr, "peerbench:", err)
		os.Exit(1)
	}
}

// howToBuild is what check says when a binary is missing.
const howToBuild = `build it as ../shared/peer-bench/README.md says:
  Bento: its source (github.com/warpstreamlabs/bento, newest commit) in a folder bento, the peer
    bench's bento-main.go as main.go in a module beside it with
    'replace github.com/warpstreamlabs/bento => ../bento', Bento's go.sum, go mod tidy, go build
  nats-server: GOBIN=DIR go install github.com/nats-io/nats-server/v2@VERSION, VERSION the one
    in the repository's go.mod
then run with -bento PATH -nats-server PATH, or BENTO=PATH NATS_SERVER=PATH`

// check checks the flags and that the binaries and the peer bench's files
// are there.
func check(f *flags) error {
	if f.bento == "" {
		return fmt.Errorf("no Bento binary: give -bento PATH or set BENTO; %s", howToBuild)
	}
	if f.natsServer == "" {
		return fmt.Errorf("no nats-server binary: give -nats-server PATH or set NATS_SERVER; %s", howToBuild)
	}
	for _, bin := range []struct{ name, path string }{{"Bento", f.bento}, {"nats-server", f.natsServer}} {
		st, err := os.Stat(bin.path)
		if err != nil {
			return fmt.Errorf("%s binary %s: %w; %s", bin.name, bin.path, err, howToBuild)
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%s binary %s is not an executable file; %s", bin.name, bin.path, howToBuild)
		}
	}
	for _, name := range []string{"bento.yaml", "table.sql"} {
		if _, err := os.Stat(f.peerBench + "/" + name); err != nil {
			return fmt.Errorf("the peer bench's %s: %w (give its folder with -peer-bench DIR)", name, err)
		}
	}
	if f.events < 1 || f.batch < 1 {
		return fmt.Errorf("-events %d, -batch %d: give at least 1 each", f.events, f.batch)
	}
	for _, m := range strings.Split(f.modes, ",") {
		if m != modePreloaded && m != modeLive {
			return fmt.Errorf("-modes: unknown mode %q; use %s or %s", m, modePreloaded, modeLive)
		}
	}
	if f.until != untilAcks && f.until != untilRows {
		return fmt.Errorf("-until %q: use %s or %s", f.until, untilAcks, untilRows)
	}
	return nil
}

const (
	modePreloaded = "preloaded"
	modeLive      = "live"
	untilAcks     = "acks"
	untilRows     = "rows"
)

// run measures each mode and prints the table.
func run(ctx context.Context, f flags) error {
	version, err := natsServerVersion(ctx, f.natsServer)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Bento %s, %s; until the %s reach %d\n", f.bento, version, f.until, f.events)
	var reports []report
	var errs []error
	for _, mode := range strings.Split(f.modes, ",") {
		load := loadAverage()
		fmt.Fprintf(os.Stderr, "%s: %d orders; load average before: %s\n", mode, f.events, load)
		r, err := measure(ctx, f, mode)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", mode, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		r.Load = load
		reports = append(reports, r)
	}
	if len(reports) > 0 {
		printReports(reports)
	}
	return errors.Join(errs...)
}

func printReports(reports []report) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tevents\tevents/s\tBento CPU/event\tnats-server CPU/event\tPostgreSQL CPU/event\tBento peak RSS\tpublisher CPU/event\tload before\t")
	others := false
	for _, r := range reports {
		pg := "-"
		if r.PostgresCPUMicros >= 0 {
			pg = fmt.Sprintf("%.1f µs", r.PostgresCPUMicros)
			if r.PostgresOthers > 0 {
				pg += " *"
				others = true
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.1f µs\t%.1f µs\t%s\t%.0f MB\t%.1f µs\t%s\t\n", r.Mode, r.Events, r.EventsPerSecond,
			r.BentoCPUMicros, r.NATSCPUMicros, pg, float64(r.BentoPeakRSS)/(1<<20), r.PublisherCPUMicros, r.Load)
	}
	_ = tw.Flush()
	if others {
		fmt.Println("* other databases of the PostgreSQL server committed transactions during the run: their work is in the figure")
	}
}
