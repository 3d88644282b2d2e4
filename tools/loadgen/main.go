// Command loadgen measures Syncline end to end: it runs the all-in-one mode
// in a child process per store backend, pushes change events (1 KiB orders)
// through the whole chain — ingest, mapper, dedup with its ledger, the SQL
// target, the audit stream and the API log — and reports events per second,
// latency from publish to target write at a paced rate, and peak memory.
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
	events   int
	rate     int
	paced    time.Duration
	batch    int
	profile  string
	parts    int
}

func main() {
	var f flags
	flag.StringVar(&f.backends, "backends", "sqlite,postgres", "store backends to measure, comma-separated")
	flag.StringVar(&f.backend, "backend", "", "measure one backend in this process (used by the parent)")
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
	var reports []report
	for _, b := range strings.Split(f.backends, ",") {
		fmt.Fprintf(os.Stderr, "measuring %s: %d events, then %d/s for %s…\n", b, f.events, f.rate, f.paced)
		cmd := exec.CommandContext(ctx, self, "-backend", b, "-events", fmt.Sprint(f.events),
			"-rate", fmt.Sprint(f.rate), "-paced", f.paced.String(), "-batch", fmt.Sprint(f.batch), "-cpuprofile", f.profile, "-partitions", fmt.Sprint(f.parts))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("measuring %s: %w", b, err)
		}
		var r report
		if err := json.Unmarshal(out, &r); err != nil {
			return fmt.Errorf("reading %s's report: %w", b, err)
		}
		reports = append(reports, r)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "backend\tpartitions\tevents\tevents/s\tp50 (burst)\tp99 (burst)\tpeak RSS (burst)\tpaced rate\tp50 (paced)\tp99 (paced)\tpeak RSS (paced)\t")
	for _, r := range reports {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%s\t%s\t%.0f MB\t%d/s\t%s\t%s\t%.0f MB\t\n", r.Backend, r.Partitions, r.Events, r.EventsPerSecond,
			ms(r.BurstP50), ms(r.BurstP99), mb(r.PeakRSSBytes), r.PacedRate, ms(r.PacedP50), ms(r.PacedP99), mb(r.PacedRSSBytes))
	}
	return tw.Flush()
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
