// Command loadgen measures Syncline end to end: it runs the all-in-one mode
// in a child process per store backend and target connector, pushes change
// events (1 KiB orders) through the whole chain — ingest, mapper, dedup with
// its ledger, the target (a table in the backend's database, or a webshop's
// HTTP API: json-server behind the rest target, within a budget), the audit
// stream and the API log — and reports events per second, latency from
// publish to target write at a paced rate, peak memory, and the time pushes
// waited on the target's budget and the throttles it met.
//
// Against the same burst it measures, once per run, the limit of the
// machine for a pipeline of that shape: a bare relay of four file-backed
// JetStream streams (see relay.go). It prints each sql burst's events/s as
// a ratio to the relay's, and what each burst cost per event: CPU of the
// process and of PostgreSQL, Go heap allocations (see cost.go).
//
// The orders target (-targets orders) measures the business case instead:
// orders of 1 to 20 lines, whose customers (a pool of e-mails) are found or
// made and whose SKUs are checked through the ledger and the ERP, into a
// real Tryton 6.0 (sales confirmed) and into json-server as an ERP's API
// (the rest target's canonical entities). It reports orders per second of a
// burst, latency of a paced run, and whether every order landed exactly
// once, in the state asked, read back over each ERP's own API; a run whose
// orders did not fails.
//
// The polling target (-targets polling) measures a polled source instead
// of a publishing one: an initial load of a 100,000-row PostgreSQL table of
// orders, read page by page by the sql source into the sql target, from the
// first poll to the last row written (see polling.go).
//
// Latency is measured from the moment an event is published to the moment
// the connector's audit event for it arrives, which the connector publishes
// right after the target transaction commits: so it covers the target write
// and a little more, never less.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/syncline/syncline/pkg/bus"
)

type flags struct {
	backends string
	backend  string
	// publisher and publishURL make this process the burst's publisher
	// (publisher.go).
	publisher, publishURL string
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

	// orderERPs are the ERPs the orders target measures; erp is the child's.
	orderERPs, erp string
	// trytonOrders and trytonOrderRate size the orders runs against Tryton,
	// restOrders and restOrderRate those against json-server; orders and
	// orderRate are the child's.
	trytonOrders, restOrders, orders          int
	trytonOrderRate, restOrderRate, orderRate float64
	orderPaced                                time.Duration
	orderProducts                             int

	// relay and relayBatched say which bare relays the parent measures;
	// relayBatch is the child's: the most events per message between
	// stages.
	relay, relayBatched bool
	relayBatch          int

	// pollRows and pollPageSize size the polling run (polling.go).
	pollRows, pollPageSize int
}

func main() {
	var f flags
	flag.StringVar(&f.backends, "backends", "sqlite,postgres", "store backends to measure, comma-separated")
	flag.StringVar(&f.backend, "backend", "", "measure one backend in this process (used by the parent)")
	flag.StringVar(&f.targets, "targets", "sql,rest", "target connectors to measure, comma-separated: sql (a table in the backend's database), rest (json-server 0.17.4, from make peers; measured on the sqlite backend), orders (orders of 1 to 20 lines into the ERPs of -order-erps, on the sqlite backend), polling (a PostgreSQL table of -poll-rows orders polled by the sql source into the sql target, per backend)")
	flag.StringVar(&f.target, "target", "sql", "the target connector of this process (used by the parent)")
	flag.IntVar(&f.restEvents, "rest-events", 2000, "events for the throughput run against the rest target")
	flag.IntVar(&f.restRate, "rest-rate", 100, "events per second for the latency run against the rest target")
	flag.IntVar(&f.events, "events", 100000, "events for the throughput run")
	flag.IntVar(&f.rate, "rate", 1000, "events per second for the latency run")
	flag.DurationVar(&f.paced, "paced", 15*time.Second, "length of the latency run")
	flag.IntVar(&f.batch, "batch", 500, "events per publish batch in the throughput run")
	flag.IntVar(&f.parts, "partitions", 0, "partitions of the flow and push subjects (0: what the all-in-one mode picks for this machine)")
	flag.StringVar(&f.orderERPs, "order-erps", "tryton,rest", "ERPs the orders target measures, comma-separated: tryton (Tryton 6.0, from make tryton), rest (json-server 0.17.4 as an ERP's API, from make peers)")
	flag.StringVar(&f.erp, "erp", "", "the ERP of this process's orders run (used by the parent)")
	flag.IntVar(&f.trytonOrders, "tryton-orders", 24, "orders of the burst into Tryton")
	flag.Float64Var(&f.trytonOrderRate, "tryton-order-rate", 0.3, "orders per second of the paced run into Tryton")
	flag.IntVar(&f.restOrders, "rest-orders", 600, "orders of the burst into json-server")
	flag.Float64Var(&f.restOrderRate, "rest-order-rate", 20, "orders per second of the paced run into json-server")
	flag.IntVar(&f.orders, "orders", 0, "orders of this process's burst (used by the parent)")
	flag.Float64Var(&f.orderRate, "order-rate", 0, "orders per second of this process's paced run (used by the parent)")
	flag.DurationVar(&f.orderPaced, "order-paced", 30*time.Second, "length of the paced run of the orders target")
	flag.IntVar(&f.orderProducts, "order-products", 30, "products the orders target seeds into each ERP before its orders (at least 20: an order's lines name distinct SKUs)")
	flag.BoolVar(&f.relay, "relay", true, "also measure a bare relay of four file-backed JetStream streams (one message per event per hop) with -events events, once, for the sql target's ratio to it")
	flag.BoolVar(&f.relayBatched, "relay-batched", false, "also measure the bare relay carrying one message per batch of up to 500 events per hop")
	flag.IntVar(&f.relayBatch, "relay-batch", 0, "measure the bare relay in this process, with up to this many events per message between stages (used by the parent)")
	flag.IntVar(&f.pollRows, "poll-rows", 100000, "rows of the source table the polling target reads")
	flag.IntVar(&f.pollPageSize, "poll-page-size", 1000, "page_size of the polling target's sql source: rows per read, 1 to 10000")
	flag.StringVar(&f.publisher, "publisher", "", "publish the burst in this process: ingest or relay (used by the children)")
	flag.StringVar(&f.publishURL, "publish-url", "", "the NATS server the publisher process publishes to (used by the children)")
	flag.StringVar(&f.profile, "cpuprofile", "", "write a CPU profile of the throughput run to FILE.<backend> (the bare relay's to FILE.relay<events per message>), and heap profiles after each run")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case f.publisher != "":
		err = publisherChild(ctx, f)
	case f.relayBatch > 0:
		err = relayChild(ctx, f)
	case f.erp != "":
		err = orderChild(ctx, f)
	case f.backend != "" && f.target == "polling":
		err = pollChild(ctx, f)
	case f.backend != "":
		err = child(ctx, f)
	default:
		err = parent(ctx, f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// parent runs one child process per backend and target (and per ERP of the
// orders target, and per bare relay), so that each one's peak RSS and CPU
// time are its own, and prints the tables. Orders that did not all land exactly once fail the run, after the
// tables.
func parent(ctx context.Context, f flags) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	type run struct{ backend, target, erp string }
	var runs []run
	for _, t := range strings.Split(f.targets, ",") {
		switch t {
		case "sql":
			for _, b := range strings.Split(f.backends, ",") {
				runs = append(runs, run{backend: b, target: t})
			}
		case "rest":
			runs = append(runs, run{backend: "sqlite", target: t})
		case "orders":
			if err := checkOrderFlags(f); err != nil {
				return err
			}
			for _, e := range strings.Split(f.orderERPs, ",") {
				if e != erpTryton && e != erpREST {
					return fmt.Errorf("-order-erps: unknown ERP %q; use %s or %s", e, erpTryton, erpREST)
				}
				runs = append(runs, run{backend: "sqlite", target: t, erp: e})
			}
		case "polling":
			if f.pollRows < 1 || f.pollPageSize < 1 || f.pollPageSize > maxPollPageSize {
				return fmt.Errorf("-poll-rows %d, -poll-page-size %d: give at least 1 row, and pages of 1 to %d rows (the sql source's page_size)", f.pollRows, f.pollPageSize, maxPollPageSize)
			}
			for _, b := range strings.Split(f.backends, ",") {
				runs = append(runs, run{backend: b, target: t})
			}
		default:
			return fmt.Errorf("target %q: use sql, rest, orders or polling", t)
		}
	}
	// The bare relay runs once, before Syncline, when a target whose burst
	// the machine's CPU bounds is measured.
	var relays []relayReport
	if f.relay && slices.ContainsFunc(runs, func(r run) bool { return r.target == "sql" }) {
		batches := []int{1}
		if f.relayBatched {
			batches = append(batches, bus.DefaultConfig().MaxBatch)
		}
		for _, b := range batches {
			shape := "one message per event per hop"
			if b > 1 {
				shape = fmt.Sprintf("one message per batch of up to %d events per hop", b)
			}
			fmt.Fprintf(os.Stderr, "measuring the bare relay, %s: %d events…\n", shape, f.events)
			var rep relayReport
			if err := runChild(ctx, self, &rep, "-relay-batch", fmt.Sprint(b), "-events", fmt.Sprint(f.events), "-batch", fmt.Sprint(f.batch), "-cpuprofile", f.profile); err != nil {
				return fmt.Errorf("measuring the bare relay: %w", err)
			}
			relays = append(relays, rep)
		}
	}
	var reports []report
	var orderReports []orderReport
	var pollReports []pollReport
	for _, r := range runs {
		if r.target == "polling" {
			fmt.Fprintf(os.Stderr, "measuring a polled table of %d rows into %s, %d rows a page…\n", f.pollRows, r.backend, f.pollPageSize)
			var rep pollReport
			if err := runChild(ctx, self, &rep, "-backend", r.backend, "-target", r.target, "-poll-rows", fmt.Sprint(f.pollRows), "-poll-page-size", fmt.Sprint(f.pollPageSize),
				"-cpuprofile", f.profile, "-partitions", fmt.Sprint(f.parts)); err != nil {
				return fmt.Errorf("measuring a polled table into %s: %w", r.backend, err)
			}
			pollReports = append(pollReports, rep)
			continue
		}
		if r.target == "orders" {
			orders, rate := f.trytonOrders, f.trytonOrderRate
			if r.erp == erpREST {
				orders, rate = f.restOrders, f.restOrderRate
			}
			fmt.Fprintf(os.Stderr, "measuring orders into %s: %d products, %d warm-up orders, %g orders/s for %s, then %d orders…\n",
				r.erp, f.orderProducts, warmOrders, rate, f.orderPaced, orders)
			var rep orderReport
			if err := runChild(ctx, self, &rep, "-erp", r.erp, "-orders", fmt.Sprint(orders), "-order-rate", fmt.Sprint(rate), "-order-paced", f.orderPaced.String(),
				"-order-products", fmt.Sprint(f.orderProducts), "-partitions", fmt.Sprint(f.parts)); err != nil {
				return fmt.Errorf("measuring orders into %s: %w", r.erp, err)
			}
			orderReports = append(orderReports, rep)
			continue
		}
		events, rate := f.events, f.rate
		if r.target == "rest" {
			events, rate = f.restEvents, f.restRate
		}
		fmt.Fprintf(os.Stderr, "measuring %s into %s: %d events, then %d/s for %s…\n", r.backend, r.target, events, rate, f.paced)
		var rep report
		if err := runChild(ctx, self, &rep, "-backend", r.backend, "-target", r.target, "-events", fmt.Sprint(events),
			"-rate", fmt.Sprint(rate), "-paced", f.paced.String(), "-batch", fmt.Sprint(f.batch), "-cpuprofile", f.profile, "-partitions", fmt.Sprint(f.parts)); err != nil {
			return fmt.Errorf("measuring %s into %s: %w", r.backend, r.target, err)
		}
		reports = append(reports, rep)
	}
	if len(reports) > 0 {
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "backend\ttarget\tpartitions\tevents\tevents/s\tp50 (burst)\tp99 (burst)\tpeak RSS (burst)\tpaced rate\tp50 (paced)\tp99 (paced)\tpeak RSS (paced)\tbudget\tbudget wait\tthrottles\t")
		for _, r := range reports {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0f\t%s\t%s\t%.0f MB\t%d/s\t%s\t%s\t%.0f MB\t%s\t%.1f s\t%d\t\n", r.Backend, r.Target, r.Partitions, r.Events, r.EventsPerSecond,
				ms(r.BurstP50), ms(r.BurstP99), mb(r.PeakRSSBytes), r.PacedRate, ms(r.PacedP50), ms(r.PacedP99), mb(r.PacedRSSBytes),
				r.Budget, r.BudgetWaitSeconds, r.Throttles)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Println()
		if err := printCosts(relays, reports); err != nil {
			return err
		}
	}
	var pollErr error
	if len(pollReports) > 0 {
		if len(reports) > 0 {
			fmt.Println()
		}
		// A failed polling run still lets the orders' table print.
		pollErr = printPolling(pollReports)
	}
	if len(orderReports) == 0 {
		return pollErr
	}
	if len(reports) > 0 || len(pollReports) > 0 {
		fmt.Println()
	}
	if err := printOrders(orderReports); err != nil {
		return errors.Join(pollErr, err)
	}
	return pollErr
}

// runChild runs this program with args and reads the report it prints into
// rep.
func runChild(ctx context.Context, self string, rep any, args ...string) error {
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, rep); err != nil {
		return fmt.Errorf("reading the report: %w", err)
	}
	return nil
}

// printCosts prints the bursts' events/s beside the bare relay's, as a
// ratio to the relay of one message per event (for the sql target, whose
// burst the machine's CPU bounds; the rest target's is json-server's), and
// what each burst cost per event.
func printCosts(relays []relayReport, reports []report) error {
	var limit float64
	if len(relays) > 0 {
		limit = relays[0].EventsPerSecond
	}
	ratio := func(eventsPerSecond float64) string {
		if limit == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", eventsPerSecond/limit)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "burst\tevents\tevents/s\tratio to relay\tprocess CPU/event\tPostgreSQL CPU/event\tpublisher CPU/event\tallocated/event\tallocations/event\tpeak RSS (paced)\tpeak RSS (burst)\t")
	for _, r := range relays {
		name := "bare relay, 1 event/message"
		if r.Batch > 1 {
			name = fmt.Sprintf("bare relay, ≤%d events/message", r.Batch)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%.0f\t-\t%.0f MB\t\n", name, r.Events, r.EventsPerSecond, ratio(r.EventsPerSecond),
			micros(r.Cost.CPUMicros), micros(r.Cost.PostgresCPUMicros), micros(r.Cost.PublisherCPUMicros), kb(r.Cost.AllocBytes), r.Cost.AllocObjects, mb(r.PeakRSSBytes))
	}
	var shared []string
	for _, r := range reports {
		rt := "-"
		if r.Target == "sql" {
			rt = ratio(r.EventsPerSecond)
		}
		pg := micros(r.Cost.PostgresCPUMicros)
		if r.Cost.PostgresOthers > 0 {
			pg += " *"
			shared = append(shared, fmt.Sprintf("* %s into %s: PostgreSQL's other databases ran %d transactions during the burst; the figure includes their work.", r.Backend, r.Target, r.Cost.PostgresOthers))
		}
		fmt.Fprintf(tw, "%s into %s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f MB\t%.0f MB\t\n", r.Backend, r.Target, r.Events, r.EventsPerSecond, rt,
			micros(r.Cost.CPUMicros), pg, micros(r.Cost.PublisherCPUMicros), kb(r.Cost.AllocBytes), r.Cost.AllocObjects, mb(r.PacedRSSBytes), mb(r.PeakRSSBytes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, line := range shared {
		fmt.Println(line)
	}
	return nil
}

// checkOrderFlags refuses sizes the orders target cannot run with.
func checkOrderFlags(f flags) error {
	switch {
	case f.orderProducts < maxLines:
		return fmt.Errorf("-order-products %d: give at least %d, as an order's up to %d lines name distinct SKUs", f.orderProducts, maxLines, maxLines)
	case f.trytonOrders < 1 || f.restOrders < 1:
		return fmt.Errorf("-tryton-orders %d, -rest-orders %d: give each at least 1", f.trytonOrders, f.restOrders)
	case f.trytonOrderRate <= 0 || f.restOrderRate <= 0:
		return fmt.Errorf("-tryton-order-rate %g, -rest-order-rate %g: give each more than 0 orders per second", f.trytonOrderRate, f.restOrderRate)
	case f.orderPaced < 0:
		return fmt.Errorf("-order-paced %s: give 0 (no paced run) or more", f.orderPaced)
	}
	return nil
}

// printOrders prints the orders target's table, and fails loudly when an
// ERP does not hold every order exactly once.
func printOrders(reports []orderReport) error {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ERP\tstate (asked; held)\toutcomes\tproducts\torders\tlines/order min/avg/max\tcustomers (new/named)\tburst\torders/s\tpaced\tp50 (paced)\tp99 (paced)\tp50 (burst)\tp99 (burst)\tpeak RSS\tbudget wait\tthrottles\tlanded once, as asked\t")
	var failed []string
	for _, r := range reports {
		landed := "yes"
		if !r.Landed {
			landed = "NO"
			failed = append(failed, fmt.Sprintf("%s: %s", r.ERP, strings.Join(r.Problems, "; ")))
		}
		fmt.Fprintf(tw, "%s\t%s; %s\t%s\t%d\t%d\t%d/%.1f/%d\t%d/%d\t%d\t%.2f\t%d at %g/s\t%s\t%s\t%s\t%s\t%.0f MB\t%.1f s\t%d\t%s\t\n",
			r.ERP, r.State, states(r.TargetStates), states(r.Outcomes), r.Products, r.Orders, r.MinLines, r.AvgLines, r.MaxLines, r.NewCustomers, r.Customers,
			r.BurstOrders, r.OrdersPerSecond, r.PacedOrders, r.PacedRate, ms(r.PacedP50), ms(r.PacedP99), ms(r.BurstP50), ms(r.BurstP99),
			mb(r.PeakRSSBytes), r.BudgetWaitSeconds, r.Throttles, landed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(failed) > 0 {
		fmt.Fprintln(os.Stderr, "\n*** ORDERS DID NOT ALL LAND EXACTLY ONCE, AS ASKED: the figures above do not count ***")
		for _, f := range failed {
			fmt.Fprintln(os.Stderr, "***", f)
		}
		return fmt.Errorf("orders did not all land exactly once, in the state asked, in %d of %d ERPs", len(failed), len(reports))
	}
	return nil
}

// states lists counts by name (the states an ERP holds its orders in, the
// connector's outcomes).
func states(m map[string]int) string {
	var out []string
	for _, s := range slices.Sorted(maps.Keys(m)) {
		out = append(out, fmt.Sprintf("%s %d", s, m[s]))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func kb(b float64) string { return fmt.Sprintf("%.1f KB", b/(1<<10)) }

// micros shows a time per event in µs; a negative one was not measured.
func micros(us float64) string {
	if us < 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f µs", us)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
