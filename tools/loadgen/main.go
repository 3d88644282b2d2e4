// Command loadgen measures Syncline end to end: it runs the all-in-one mode
// in a child process per store backend and target connector, pushes change
// events (1 KiB orders) through the whole chain — ingest, mapper, dedup with
// its ledger, the target (a table in the backend's database, or a webshop's
// HTTP API: json-server behind the rest target, within a budget), the audit
// stream and the API log — and reports events per second, latency from
// publish to target write at a paced rate, peak memory, and the time pushes
// waited on the target's budget and the throttles it met.
//
// Latency is measured from the moment an event is published to the moment
// the connector's audit event for it arrives, which the connector publishes
// right after the target transaction commits: so it covers the target write
// and a little more, never less.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

type flags struct {
	backends string
	backend  string
	// targets are the target connectors measured; target is the child's.
	targets, target string
	// restEvents and restRate size the runs against the rest target, whose
	// peer (json-server, one Node process over a JSON file) takes far fewer
	// records per second than a database.
	restEvents, restRate int
	events               int
	rate                 int
	paced                time.Duration
	batch                int
	profile              string
	parts                int
}

func main() {
	var f flags
	flag.StringVar(&f.backends, "backends", "sqlite,postgres", "store backends to measure, comma-separated")
	flag.StringVar(&f.backend, "backend", "", "measure one backend in this process (used by the parent)")
	flag.StringVar(&f.targets, "targets", "sql,rest", "target connectors to measure, comma-separated: sql (a table in the backend's database), rest (json-server 0.17.4, from make peers; measured on the sqlite backend)")
	flag.StringVar(&f.target, "target", "sql", "the target connector of this process (used by the parent)")
	flag.IntVar(&f.restEvents, "rest-events", 2000, "events for the throughput run against the rest target")
	flag.IntVar(&f.restRate, "rest-rate", 100, "events per second for the latency run against the rest target")
	flag.IntVar(&f.events, "events", 100000, "events for the throughput run")
	flag.IntVar(&f.rate, "rate", 1000, "events per second for the latency run")
	flag.DurationVar(&f.paced, "paced", 15*time.Second, "length of the latency run")
	flag.IntVar(&f.batch, "batch", 500, "events per publish batch in the throughput run")
	flag.IntVar(&f.parts, "partitions", 0, "partitions of the flow and push subjects (0: what the all-in-one mode picks for this machine)")
	flag.StringVar(&f.profile, "cpuprofile", "", "write a CPU profile of the throughput run to FILE.<backend>, and heap profiles after each run")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if f.backend != "" {
		err = child(ctx, f)
	} else {
		err = parent(ctx, f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// parent runs one child process per backend, so that each one's peak RSS is
// its own, and prints the table.
func parent(ctx context.Context, f flags) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	type run struct{ backend, target string }
	var runs []run
	for _, t := range strings.Split(f.targets, ",") {
		switch t {
		case "sql":
			for _, b := range strings.Split(f.backends, ",") {
				runs = append(runs, run{b, t})
			}
		case "rest":
			runs = append(runs, run{"sqlite", t})
		default:
			return fmt.Errorf("target %q: use sql or rest", t)
		}
	}
	var reports []report
	for _, r := range runs {
		events, rate := f.events, f.rate
		if r.target == "rest" {
			events, rate = f.restEvents, f.restRate
		}
		fmt.Fprintf(os.Stderr, "measuring %s into %s: %d events, then %d/s for %s…\n", r.backend, r.target, events, rate, f.paced)
		cmd := exec.CommandContext(ctx, self, "-backend", r.backend, "-target", r.target, "-events", fmt.Sprint(events),
			"-rate", fmt.Sprint(rate), "-paced", f.paced.String(), "-batch", fmt.Sprint(f.batch), "-cpuprofile", f.profile, "-partitions", fmt.Sprint(f.parts))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("measuring %s into %s: %w", r.backend, r.target, err)
		}
		var rep report
		if err := json.Unmarshal(out, &rep); err != nil {
			return fmt.Errorf("reading the report of %s into %s: %w", r.backend, r.target, err)
		}
		reports = append(reports, rep)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "backend\ttarget\tpartitions\tevents\tevents/s\tp50 (burst)\tp99 (burst)\tpeak RSS (burst)\tpaced rate\tp50 (paced)\tp99 (paced)\tpeak RSS (paced)\tbudget\tbudget wait\tthrottles\t")
	for _, r := range reports {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0f\t%s\t%s\t%.0f MB\t%d/s\t%s\t%s\t%.0f MB\t%s\t%.1f s\t%d\t\n", r.Backend, r.Target, r.Partitions, r.Events, r.EventsPerSecond,
			ms(r.BurstP50), ms(r.BurstP99), mb(r.PeakRSSBytes), r.PacedRate, ms(r.PacedP50), ms(r.PacedP99), mb(r.PacedRSSBytes),
			r.Budget, r.BudgetWaitSeconds, r.Throttles)
	}
	return tw.Flush()
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
