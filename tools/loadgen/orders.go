package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/syncline/syncline/connectors/rest/jsonservertest"
	"github.com/syncline/syncline/connectors/tryton/trytontest"
	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/tools/allinone"
	"github.com/syncline/syncline/tools/internal/bench"
)

// The ERPs the orders target measures.
const (
	// erpTryton is a real Tryton 6.0 behind the tryton target.
	erpTryton = "tryton"
	// erpREST is json-server acting as an ERP's API behind the rest target, which takes
	// customers, products and orders in their canonical shapes.
	erpREST = "rest"
)

// The shape of the orders scenario's workload.
const (
	// minLines and maxLines bound an order's lines, drawn uniformly.
	minLines, maxLines = 1, 20
	// ordersPerCustomer sizes the customer pool: drawn uniformly from a pool of a quarter as
	// many customers as orders, about one order in four makes its customer and the rest find
	// one the ERP already holds.
	ordersPerCustomer = 4
	// companyEvery makes every fourth customer of the pool a company, which makes a company
	// party with its contact person in Tryton.
	companyEvery = 4
	// warmOrders are published and applied before anything is measured: the first order
	// logs in and finds or makes what every later one reuses.
	warmOrders = 3
	// orderState is how far the ERPs take each order: Tryton confirms the sale (and
	// processes it: its invoice and shipment), as a shop's paid orders are booked.
	orderState = "confirmed"
	// benchDomain is the customers' e-mail domain, by which the ERP's customers are counted.
	benchDomain = "bench.example"
)

// orderReport is one ERP's figures in the orders scenario; the child prints it as JSON.
type orderReport struct {
	ERP string
	// State is the document state the order flow asks for; TargetStates counts the states
	// the ERP's sales or orders are in when read back.
	State        string
	TargetStates map[string]int
	// Outcomes counts the connector's outcomes of the orders ("created", "skipped
	// duplicate"): every order is new, so anything but created is an order the pipeline
	// applied more than once (a push replayed after a timeout) and found there.
	Outcomes map[string]int
	Products int
	// Orders counts every order published: warm-up, paced and burst.
	Orders             int
	MinLines, MaxLines int
	AvgLines           float64
	BurstOrders        int
	OrdersPerSecond    float64
	BurstP50, BurstP99 time.Duration
	PacedRate          float64
	PacedOrders        int
	PacedP50, PacedP99 time.Duration
	Customers          int // distinct customers the orders name
	NewCustomers       int // customers the ERP holds after the run, read back from it
	PeakRSSBytes       int64
	Landed             bool
	Problems           []string
	BudgetWaitSeconds  float64
	Throttles          int
	// SetupSeconds is the time to start the ERP and Syncline; ProductSeconds the time the
	// catalogue took to land, before any order.
	SetupSeconds, ProductSeconds float64
}

// erp is the ERP an orders child writes to, and how it reads back what landed there.
type erp struct {
	endpoint map[string]any
	host     string
	// reached are the states of an order the ERP took to orderState.
	reached []string
	// readBack reads the orders and customers the ERP holds.
	readBack func(ctx context.Context) (landed, error)
	stop     func()
}

// landed is what the ERP holds after a run: per order number each copy of the order it
// holds (two entries: the order landed twice), the number of orders in each state, and its
// customers.
type landed struct {
	orders map[string][]held
	states map[string]int
	// customers counts the ERP's customers by e-mail (lower-cased).
	customers map[string]int
}

// held is an order as the ERP holds it.
type held struct {
	lines int
	state string
}

// orderChild measures one ERP: it seeds the product catalogue through a product flow,
// publishes a few orders to warm up, then orders at a steady rate (latency), then a burst
// (throughput), and reads every order and customer back from the ERP's own API.
func orderChild(ctx context.Context, f flags) error {
	if f.orderProducts < maxLines || f.orders < 1 || f.orderRate <= 0 {
		return fmt.Errorf("orders into %s: -order-products %d (at least %d), -orders %d (at least 1), -order-rate %g (more than 0)", f.erp, f.orderProducts, maxLines, f.orders, f.orderRate)
	}
	dir, err := os.MkdirTemp("", "syncline-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	setup := time.Now()
	var target *erp
	switch f.erp {
	case erpTryton:
		target, err = startTryton(ctx)
	case erpREST:
		target, err = startRESTERP(ctx)
	default:
		return fmt.Errorf("erp %q: use %s or %s", f.erp, erpTryton, erpREST)
	}
	if err != nil {
		return err
	}
	defer target.stop()

	cfg := allinone.Config{DataDir: dir, NATSPort: -1, HTTPAddr: "127.0.0.1:0", AdminToken: "bench-admin-token-0123456789", Bus: bus.DefaultConfig()}
	cfg.Bus.Partitions = f.parts
	cfg.Egress.Allow = []string{target.host}
	in, err := allinone.New(cfg)
	if err != nil {
		return err
	}
	if err := in.Start(ctx); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = in.Stop(stopCtx)
	}()
	if err := applyOrderFlows(ctx, in, target.endpoint); err != nil {
		return err
	}
	nc, js, err := serviceConn(in)
	if err != nil {
		return err
	}
	defer nc.Close()
	products, orders := newLatencies(), newLatencies()
	for subject, l := range map[string]*latencies{"audit.bench.products.*": products, "audit.bench.orders.*": orders} {
		sub, err := nc.Subscribe(subject, l.observe)
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
		_ = sub.SetPendingLimits(-1, -1)
	}
	pub := ingest.NewPublisher(js, nil)

	pacedOrders := int(f.orderRate * f.orderPaced.Seconds())
	total := warmOrders + pacedOrders + f.orders
	gen := newOrderGen(f.orderProducts, max(total/ordersPerCustomer, 1))
	r := orderReport{ERP: f.erp, State: orderState, Products: f.orderProducts, BurstOrders: f.orders, PacedRate: f.orderRate}
	r.SetupSeconds = time.Since(setup).Seconds()

	// The catalogue first, so that every SKU an order names is in the ERP.
	seeded := time.Now()
	if _, err := pub.Publish(ctx, gen.products()...); err != nil {
		return fmt.Errorf("publishing the products: %w", err)
	}
	if err := products.waitFor(ctx, f.orderProducts, 5*time.Minute); err != nil {
		return fmt.Errorf("seeding the products: %w", err)
	}
	r.ProductSeconds = time.Since(seeded).Seconds()
	fmt.Fprintf(os.Stderr, "  %s and Syncline started in %.1f s; %d products landed in %.1f s\n", f.erp, r.SetupSeconds, f.orderProducts, r.ProductSeconds)

	// measure runs the scenario's phases; an error stops it, and the orders published so
	// far are still read back, so that the report says what landed. pending is the orders
	// of the phase under way.
	var pending int
	measure := func() error {
		pending = warmOrders
		if _, err := pub.Publish(ctx, gen.orders("W", warmOrders)...); err != nil {
			return fmt.Errorf("publishing the warm-up orders: %w", err)
		}
		if err := orders.waitFor(ctx, pending, 5*time.Minute); err != nil {
			return fmt.Errorf("warming up: %w", err)
		}
		orders.reset()

		n, err := pacedOrderRun(ctx, pub, gen, f.orderRate, pacedOrders)
		pending = n
		if err != nil {
			return fmt.Errorf("publishing the paced orders: %w", err)
		}
		if err := orders.waitFor(ctx, pending, 5*time.Minute); err != nil {
			return fmt.Errorf("the paced run: %w", err)
		}
		r.PacedOrders = n
		r.PacedP50, r.PacedP99 = orders.percentiles()
		printStages(in)
		orders.reset()

		pending = f.orders
		start := time.Now()
		if _, err := pub.Publish(ctx, gen.orders("B", f.orders)...); err != nil {
			return fmt.Errorf("publishing the burst: %w", err)
		}
		if err := orders.waitFor(ctx, pending, 10*time.Minute); err != nil {
			return fmt.Errorf("the burst: %w", err)
		}
		printStages(in)
		r.OrdersPerSecond = float64(f.orders) / orders.last().Sub(start).Seconds()
		r.BurstP50, r.BurstP99 = orders.percentiles()
		return nil
	}
	if err := measure(); err != nil {
		r.Problems = append(r.Problems, err.Error())
		// Orders published and not yet applied may still land: give them a moment, so
		// that the read-back below tells a slow ERP from a lost order.
		_ = orders.waitFor(ctx, pending, 30*time.Second)
	}

	r.Orders = gen.published()
	r.MinLines, r.MaxLines, r.AvgLines = gen.lineStats()
	r.Customers = len(gen.customersUsed)
	r.PeakRSSBytes = bench.PeakRSS(0)
	r.BudgetWaitSeconds, r.Throttles = budgetFigures(in)
	got, err := target.readBack(ctx)
	if err != nil {
		return fmt.Errorf("reading the orders back from %s: %w", f.erp, err)
	}
	orders.mu.Lock()
	r.Outcomes = maps.Clone(orders.outcomes)
	orders.mu.Unlock()
	r.TargetStates = got.states
	r.NewCustomers = len(got.customers)
	r.Problems = append(r.Problems, gen.check(got, target.reached)...)
	r.Landed = len(r.Problems) == 0
	return json.NewEncoder(os.Stdout).Encode(r)
}

// pacedOrderRun publishes n orders at rate per second, one at a time.
func pacedOrderRun(ctx context.Context, pub *ingest.Publisher, gen *orderGen, rate float64, n int) (int, error) {
	if n == 0 {
		return 0, nil
	}
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for i := range n {
		if i > 0 {
			select {
			case <-ctx.Done():
				return i, ctx.Err()
			case <-t.C:
			}
		}
		if _, err := pub.Publish(ctx, gen.orders("P", 1)...); err != nil {
			return i, err
		}
	}
	return n, nil
}

// orderGen makes the scenario's products and orders, and keeps what it made, to check
// against what the ERP holds. Its draws come from a fixed seed, so every run makes the
// same orders.
type orderGen struct {
	rng   *rand.Rand
	skus  []string
	pool  int
	next  map[string]int // per key prefix, the next order's number
	lines []int
	want  map[string]int // order number -> lines
	// customersUsed are the customers the orders named, by lower-cased e-mail.
	customersUsed map[string]bool
}

func newOrderGen(products, customers int) *orderGen {
	g := &orderGen{rng: rand.New(rand.NewPCG(1, 2)), pool: customers, next: map[string]int{}, want: map[string]int{}, customersUsed: map[string]bool{}}
	for i := range products {
		g.skus = append(g.skus, fmt.Sprintf("BENCH-%04d", i+1))
	}
	return g
}

// products are the catalogue's changes, one simple product per SKU.
func (g *orderGen) products() []ingest.Change {
	var out []ingest.Change
	for i, sku := range g.skus {
		out = append(out, ingest.Change{Tenant: "bench", Endpoint: "shop", Entity: "product", Key: sku, Version: 1,
			Payload: fmt.Appendf(nil, `{"sku":%q,"name":"Bench item %d","price":%d.90}`, sku, i+1, 5+i%40)})
	}
	return out
}

// orders makes n orders on keys prefix0, prefix1...
func (g *orderGen) orders(prefix string, n int) []ingest.Change {
	out := make([]ingest.Change, n)
	for i := range out {
		out[i] = g.order(prefix)
	}
	return out
}

// order makes one order as a WooCommerce-like shop sends it: a customer drawn from the pool,
// 1 to 20 lines of distinct SKUs drawn from the catalogue.
func (g *orderGen) order(prefix string) ingest.Change {
	key := fmt.Sprintf("%s%d", prefix, g.next[prefix])
	g.next[prefix]++
	c := g.rng.IntN(g.pool)
	// Shops send e-mails as the customer typed them; the mapping lower-cases them.
	email := fmt.Sprintf("Customer-%d@Bench.Example", c)
	company := ""
	if c%companyEvery == 0 {
		company = fmt.Sprintf("Customer %d GmbH", c)
	}
	g.customersUsed[strings.ToLower(email)] = true
	n := minLines + g.rng.IntN(maxLines-minLines+1)
	var lines []string
	for _, j := range g.rng.Perm(len(g.skus))[:n] {
		lines = append(lines, fmt.Sprintf(`{"sku":%q,"name":"Bench item %d","quantity":%d,"price":"%d.90"}`, g.skus[j], j+1, 1+g.rng.IntN(3), 5+j%40))
	}
	g.lines = append(g.lines, n)
	number := "SO-" + key
	g.want[number] = n
	return ingest.Change{Tenant: "bench", Endpoint: "shop", Entity: "order", Key: key, Version: 1, Payload: fmt.Appendf(nil,
		`{"number":%q,"status":"processing","currency":"EUR","date_created":%q,`+
			`"billing":{"first_name":"Customer","last_name":"%d","company":%q,"address_1":"Hauptstr. %d","postcode":"10115","city":"Berlin","country":"DE","email":%q,"phone":"+49 30 555 %04d"},`+
			`"shipping":{"first_name":"Customer","last_name":"%d","address_1":"Hauptstr. %d","postcode":"10115","city":"Berlin","country":"DE"},`+
			`"payment_method":"paypal","line_items":[%s]}`,
		number, time.Now().UTC().Format(time.RFC3339), c, company, c+1, email, c, c, c+1, strings.Join(lines, ","))}
}

func (g *orderGen) published() int { return len(g.lines) }

func (g *orderGen) lineStats() (lo, hi int, avg float64) {
	if len(g.lines) == 0 {
		return 0, 0, 0
	}
	sum := 0
	for _, n := range g.lines {
		sum += n
	}
	return slices.Min(g.lines), slices.Max(g.lines), float64(sum) / float64(len(g.lines))
}

// check compares what the ERP holds with what was published: every order once, with all
// its lines, in one of the states reached, and every customer once. It returns the
// problems, empty when all is well.
func (g *orderGen) check(got landed, reached []string) []string {
	var missing, twice, short, behind, extra []string
	for number, lines := range g.want {
		copies := got.orders[number]
		switch {
		case len(copies) == 0:
			missing = append(missing, number)
		case len(copies) > 1:
			twice = append(twice, fmt.Sprintf("%s (%d times)", number, len(copies)))
		case copies[0].lines != lines:
			short = append(short, fmt.Sprintf("%s (%d of %d lines)", number, copies[0].lines, lines))
		case !slices.Contains(reached, copies[0].state):
			behind = append(behind, fmt.Sprintf("%s (%s)", number, copies[0].state))
		}
	}
	for number := range got.orders {
		if _, ok := g.want[number]; !ok {
			extra = append(extra, number)
		}
	}
	var problems []string
	add := func(what string, list []string) {
		if len(list) == 0 {
			return
		}
		slices.Sort(list)
		shown := list[:min(len(list), 10)]
		more := ""
		if len(list) > len(shown) {
			more = fmt.Sprintf(" and %d more", len(list)-len(shown))
		}
		problems = append(problems, fmt.Sprintf("%d %s: %s%s", len(list), what, strings.Join(shown, ", "), more))
	}
	add("orders published but not in the ERP", missing)
	add("orders in the ERP more than once", twice)
	add("orders with other lines than published", short)
	add(fmt.Sprintf("orders the ERP did not take to %s (%s)", orderState, strings.Join(reached, ", ")), behind)
	add("orders in the ERP that were never published", extra)
	var dup, lost []string
	for email, n := range got.customers {
		if n > 1 {
			dup = append(dup, fmt.Sprintf("%s (%d times)", email, n))
		}
	}
	for email := range g.customersUsed {
		if got.customers[email] == 0 {
			lost = append(lost, email)
		}
	}
	add("customers in the ERP more than once", dup)
	add("customers of orders not in the ERP", lost)
	return problems
}

// applyOrderFlows applies the bench tenant with a product and an order flow from the shop
// to target, on the default mappings.
func applyOrderFlows(ctx context.Context, in *allinone.Instance, target map[string]any) error {
	flow := func(name, entity string, extra map[string]any) *controlplanev1.Resource {
		spec := map[string]any{"integrator": "load", "source": "shop", "target": "erp", "entity": entity}
		for k, v := range extra {
			spec[k] = v
		}
		return resource("Flow", "bench", name, spec)
	}
	return apply(ctx, in, []*controlplanev1.Resource{
		resource("Tenant", "", "bench", map[string]any{}),
		resource("Integrator", "bench", "load", map[string]any{}),
		resource("Endpoint", "bench", "shop", map[string]any{"type": "nats", "description": "load generator"}),
		resource("Endpoint", "bench", "erp", target),
		flow("products", "product", nil),
		flow("orders", "order", map[string]any{"document": map[string]any{"state": orderState}}),
	})
}

// startTryton starts a Tryton 6.0 server on a fresh copy of the seeded database (company,
// EUR, chart of accounts, the accounting category Goods that new products get, so that a
// confirmed sale can be invoiced).
func startTryton(ctx context.Context) (*erp, error) {
	srv, err := trytontest.Start()
	if err != nil {
		return nil, err
	}
	db, err := srv.OpenDatabase(ctx)
	if err != nil {
		_ = srv.Stop()
		return nil, err
	}
	u, err := url.Parse(srv.URL)
	if err != nil {
		_ = srv.Stop()
		return nil, err
	}
	return &erp{
		endpoint: map[string]any{"type": "tryton", "description": "Tryton 6.0 ERP",
			"settings":    map[string]any{"url": srv.URL, "database": db.Name, "user": trytontest.AdminUser, "account_category": "Goods"},
			"credentials": map[string]any{"password": trytontest.AdminPassword}},
		host: u.Host,
		// A confirmed sale is processed (its invoice and shipment made) in the same
		// push, and done once both are; confirmed alone would be one Tryton failed to
		// process.
		reached:  []string{"processing", "done"},
		readBack: func(ctx context.Context) (landed, error) { return readTryton(db) },
		stop:     func() { _ = srv.Stop() },
	}, nil
}

// readTryton reads every sale (its reference, state and lines) and every customer with an
// e-mail of the bench's domain over Tryton's own JSON-RPC. A company customer's contact
// person has the company's e-mail too: customers are the parties no relation makes another
// party's contact person.
func readTryton(db *trytontest.Database) (landed, error) {
	ctx := map[string]any{"company": 1}
	var sales []struct {
		Reference string  `json:"reference"`
		State     string  `json:"state"`
		Lines     []int64 `json:"lines"`
	}
	if err := db.CallErr(&sales, "model.sale.sale.search_read", []any{}, 0, nil, nil, []string{"reference", "state", "lines"}, ctx); err != nil {
		return landed{}, fmt.Errorf("reading Tryton's sales: %w", err)
	}
	got := landed{orders: map[string][]held{}, states: map[string]int{}, customers: map[string]int{}}
	for _, s := range sales {
		got.orders[s.Reference] = append(got.orders[s.Reference], held{lines: len(s.Lines), state: s.State})
		got.states[s.State]++
	}
	var mechanisms []struct {
		Party int64  `json:"party"`
		Value string `json:"value"`
	}
	if err := db.CallErr(&mechanisms, "model.party.contact_mechanism.search_read", []any{[]any{"type", "=", "email"}, []any{"value", "ilike", "%@" + benchDomain}},
		0, nil, nil, []string{"party", "value"}, ctx); err != nil {
		return landed{}, fmt.Errorf("reading Tryton's customers: %w", err)
	}
	var contacts []struct {
		To int64 `json:"to"`
	}
	if err := db.CallErr(&contacts, "model.party.relation.all.search_read", []any{[]any{"type.name", "=", "Contact Person"}}, 0, nil, nil, []string{"to"}, ctx); err != nil {
		return landed{}, fmt.Errorf("reading Tryton's contact persons: %w", err)
	}
	contact := map[int64]bool{}
	for _, c := range contacts {
		contact[c.To] = true
	}
	for _, m := range mechanisms {
		if !contact[m.Party] {
			got.customers[strings.ToLower(m.Value)]++
		}
	}
	return got, nil
}

// startRESTERP starts json-server as an ERP's API with empty customers, products and orders,
// behind the rest target with its canonical entities (as tools/allinone's orders test) and
// the rest target's bench budget.
func startRESTERP(ctx context.Context) (*erp, error) {
	peer, err := jsonservertest.Start()
	if err != nil {
		return nil, err
	}
	if err := resetPeer(ctx, peer.URL, `{"db":{"customers":[],"products":[],"orders":[]}}`); err != nil {
		peer.Stop()
		return nil, err
	}
	u, err := url.Parse(peer.URL)
	if err != nil {
		peer.Stop()
		return nil, err
	}
	return &erp{
		endpoint: map[string]any{"type": "rest", "description": "an ERP's API (json-server)", "settings": map[string]any{
			"base_url": peer.URL, "timeout": "5s", "max_concurrency": restConcurrency,
			"entities": map[string]any{
				"customer": map[string]any{"path": "/customers", "canonical": true, "lookup": map[string]any{"email": "email"}},
				"product":  map[string]any{"path": "/products", "canonical": true, "lookup": map[string]any{"sku": "sku"}},
				"order": map[string]any{"path": "/orders", "canonical": true, "lookup": map[string]any{"number": "number"},
					"refs_field": "refs", "state_field": "state", "states": []any{"open", "confirmed"}},
			},
		}},
		host:     u.Host,
		reached:  []string{orderState},
		readBack: func(ctx context.Context) (landed, error) { return readRESTERP(ctx, peer) },
		stop:     peer.Stop,
	}, nil
}

// readRESTERP reads every order and customer over json-server's own API.
func readRESTERP(ctx context.Context, peer *jsonservertest.Server) (landed, error) {
	orders, err := peer.List(ctx, jsonservertest.Auth{}, "orders", nil)
	if err != nil {
		return landed{}, err
	}
	got := landed{orders: map[string][]held{}, states: map[string]int{}, customers: map[string]int{}}
	for _, o := range orders {
		number, state := fmt.Sprint(o["number"]), fmt.Sprint(o["state"])
		lines, _ := o["lines"].([]any)
		got.orders[number] = append(got.orders[number], held{lines: len(lines), state: state})
		got.states[state]++
	}
	customers, err := peer.List(ctx, jsonservertest.Auth{}, "customers", nil)
	if err != nil {
		return landed{}, err
	}
	for _, c := range customers {
		got.customers[strings.ToLower(fmt.Sprint(c["email"]))]++
	}
	return got, nil
}
