package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/tools/internal/bench"
)

// report is one mode's figures.
type report struct {
	Mode            string
	Events          int
	EventsPerSecond float64
	// The CPU time (user and system) per event of Bento, the nats-server,
	// PostgreSQL's whole server (see bench.Server; -1 when not measured) and
	// this program (the publishers in the live mode, and the polls).
	BentoCPUMicros, NATSCPUMicros, PostgresCPUMicros, PublisherCPUMicros float64
	// PostgresOthers counts the transactions other databases of the server
	// committed during the run: work not the bench's that its figure holds.
	PostgresOthers int64
	// BentoPeakRSS is Bento's peak resident set (VmHWM), in bytes.
	BentoPeakRSS int64
	// Load is the load average before the mode's run.
	Load string
}

// The stream, its subject and Bento's consumer (bento.yaml's durable).
const (
	streamName   = "ORDERS"
	orderSubject = "orders.bench.shop.order"
	consumerName = "bento_orders"
)

// runLimit bounds the time a mode's orders may take to go through.
const runLimit = 10 * time.Minute

// measure runs one mode on a fresh nats-server, database and Bento.
func measure(ctx context.Context, f flags, mode string) (report, error) {
	r := report{Mode: mode, Events: f.events}
	dir, err := os.MkdirTemp("", "peerbench-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)

	ns, err := startNATS(ctx, f.natsServer, dir)
	if err != nil {
		return r, err
	}
	defer ns.stop()

	dbURL, drop, err := bench.FreshDatabase(ctx, "peerbench_orders")
	if err != nil {
		return r, err
	}
	defer drop()
	if err := createTable(ctx, dbURL, filepath.Join(f.peerBench, "table.sql")); err != nil {
		return r, err
	}
	// The meter's connection is to the bench's database, so that its own
	// queries are not another database's transactions.
	pg, err := bench.OpenServer(ctx, dbURL, bench.DatabaseName(dbURL))
	if err != nil {
		fmt.Fprintf(os.Stderr, "  PostgreSQL's CPU time is not measured: %v\n", err)
		pg = nil
	} else {
		defer pg.Close()
	}

	nc, err := nats.Connect(ns.url, nats.Name("peerbench"))
	if err != nil {
		return r, fmt.Errorf("connecting to the nats-server: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		return r, err
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: streamName, Subjects: []string{"orders.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		return r, fmt.Errorf("creating the stream %s: %w", streamName, err)
	}

	env := []string{"NATS_URL=" + ns.url, "PG_DSN=" + dbURL}
	config := filepath.Join(f.peerBench, "bento.yaml")
	var b *bento
	defer func() {
		if b != nil {
			b.stop()
		}
	}()
	var m *meter
	pub := &publishing{done: make(chan struct{})}
	switch mode {
	case modePreloaded:
		if err := publish(ctx, js, f.events, f.batch); err != nil {
			return r, fmt.Errorf("publishing the orders: %w", err)
		}
		close(pub.done)
		if m, err = startMeter(ctx, pg, ns.pid); err != nil {
			return r, err
		}
		// Bento's CPU counts from its start.
		if b, err = startBento(ctx, f.bento, config, dir, env); err != nil {
			return r, err
		}
		m.bento = b.pid
	case modeLive:
		if b, err = startBento(ctx, f.bento, config, dir, env); err != nil {
			return r, err
		}
		if err := waitBound(ctx, stream, b); err != nil {
			return r, err
		}
		if m, err = startMeter(ctx, pg, ns.pid); err != nil {
			return r, err
		}
		m.bento = b.pid
		if m.bentoCPU, err = processCPU(b.pid); err != nil {
			return r, err
		}
		go func() {
			pub.err = publish(ctx, js, f.events, f.batch)
			close(pub.done)
		}()
	}

	progress := ackFloor(stream)
	if f.until == untilRows {
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			return r, err
		}
		defer conn.Close(context.Background())
		progress = rowCount(conn)
	}
	end, err := waitFor(ctx, f.events, progress, b, pub)
	if err != nil {
		return r, err
	}
	c, err := m.stop(ctx, f.events)
	if err != nil {
		return r, err
	}
	r.BentoPeakRSS = bench.PeakRSS(b.pid)
	r.EventsPerSecond = float64(f.events) / end.Sub(m.start).Seconds()
	r.BentoCPUMicros, r.NATSCPUMicros, r.PostgresCPUMicros, r.PublisherCPUMicros = c.bento, c.nats, c.postgres, c.self
	r.PostgresOthers = c.postgresOthers

	// The other measure agrees: every order is a row, and acknowledged.
	if f.until == untilRows {
		_, err = waitFor(ctx, f.events, ackFloor(stream), b, pub)
	} else {
		conn, cerr := pgx.Connect(ctx, dbURL)
		if cerr != nil {
			return r, cerr
		}
		defer conn.Close(context.Background())
		_, err = waitFor(ctx, f.events, rowCount(conn), b, pub)
	}
	if err != nil {
		return r, fmt.Errorf("after the run: %w", err)
	}
	if err := checkRow(ctx, dbURL); err != nil {
		return r, err
	}
	<-pub.done
	if pub.err != nil {
		return r, fmt.Errorf("publishing the orders: %w", pub.err)
	}
	b.stop()
	if log := b.logTail(20); log != "" {
		fmt.Fprintf(os.Stderr, "  Bento's log (last lines):\n%s\n", log)
	}
	return r, nil
}

// createTable runs the peer bench's table.sql in the database at url.
func createTable(ctx context.Context, url, file string) error {
	sql, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, string(sql)); err != nil {
		return fmt.Errorf("running %s: %w", file, err)
	}
	return nil
}

// checkRow checks that Bento mapped an order as the mapping says: order
// B1's row holds the sum of its lines (a float sum in Bento, 40.949999999999996:
// rounded to cents here), the e-mail in lower case and so on.
func checkRow(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var row string
	if err := conn.QueryRow(ctx, `SELECT concat_ws('|', order_number, status, currency, round(total, 2), customer_name, customer_email, company, city, country, lines, employee_number, source_version)
		FROM orders WHERE external_ref = 'B1'`).Scan(&row); err != nil {
		return fmt.Errorf("reading order B1's row: %w", err)
	}
	const want = "SO-B1|paid|EUR|40.95|Customer 1|customer1@example.com|Company 1 BV|Amsterdam|NL|2|999999|1"
	if row != want {
		return fmt.Errorf("order B1's row is %q, want %q", row, want)
	}
	return nil
}

// waitBound waits until Bento's durable push consumer exists and Bento
// has subscribed to it.
func waitBound(ctx context.Context, stream jetstream.Stream, b *bento) error {
	deadline := time.Now().Add(time.Minute)
	for {
		if c, err := stream.PushConsumer(ctx, consumerName); err == nil {
			if info, err := c.Info(ctx); err == nil && info.PushBound {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the Bento process did not subscribe to the consumer %s within a minute; its log:\n%s", consumerName, b.logTail(20))
		}
		select {
		case <-b.exited:
			return fmt.Errorf("the Bento process exited before subscribing: %v; its log:\n%s", b.err, b.logTail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ackFloor is the progress of Bento's consumer: the stream sequence up to
// which every message is acknowledged, which in a fresh stream of the
// run's orders is how many of them Bento has written and acknowledged. It
// is 0 until Bento has made its consumer.
func ackFloor(stream jetstream.Stream) func(context.Context) (int, error) {
	var cons jetstream.PushConsumer
	return func(ctx context.Context) (int, error) {
		if cons == nil {
			c, err := stream.PushConsumer(ctx, consumerName)
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				return 0, nil
			}
			if err != nil {
				return 0, err
			}
			cons = c
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return 0, err
		}
		return int(info.AckFloor.Stream), nil
	}
}

// rowCount is the progress as the table's row count.
func rowCount(conn *pgx.Conn) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		var n int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n)
		return n, err
	}
}

// waitFor polls progress every 50 ms until it reaches n, and returns when
// it did. It stops at a publish error, at Bento's exit and after runLimit.
func waitFor(ctx context.Context, n int, progress func(context.Context) (int, error), b *bento, pub *publishing) (time.Time, error) {
	deadline := time.Now().Add(runLimit)
	published := pub.done
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	got := 0
	for {
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-b.exited:
			return time.Time{}, fmt.Errorf("the Bento process exited after %d of %d orders: %v; its log:\n%s", got, n, b.err, b.logTail(20))
		case <-published:
			if pub.err != nil {
				return time.Time{}, fmt.Errorf("publishing the orders: %w", pub.err)
			}
			published = nil // done: wait on the rest
		case <-t.C:
		}
		var err error
		if got, err = progress(ctx); err != nil {
			return time.Time{}, err
		}
		if got >= n {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("only %d of %d orders went through within %s", got, n, runLimit)
		}
	}
}

// publishing is the publishers' outcome: err, once done is closed.
type publishing struct {
	done chan struct{}
	err  error
}

// publish sends events orders in batches of batch from four publishers at
// once, as the load generator's burst does (tools/loadgen's inBatches): each
// publishes its batch asynchronously and waits for the batch's PubAcks
// before taking the next.
func publish(ctx context.Context, js jetstream.JetStream, events, batch int) error {
	const publishers = 4
	var next atomic.Int64
	errs := make(chan error, publishers)
	for range publishers {
		go func() {
			futures := make([]jetstream.PubAckFuture, 0, batch)
			for {
				from := int(next.Add(int64(batch))) - batch
				if from >= events {
					errs <- nil
					return
				}
				futures = futures[:0]
				for i := from; i < min(from+batch, events); i++ {
					f, err := js.PublishMsgAsync(&nats.Msg{Subject: orderSubject, Data: order("B", i)})
					if err != nil {
						errs <- err
						return
					}
					futures = append(futures, f)
				}
				for _, f := range futures {
					select {
					case <-f.Ok():
					case err := <-f.Err():
						errs <- err
						return
					case <-ctx.Done():
						errs <- ctx.Err()
						return
					}
				}
			}
		}()
	}
	var err error
	for range publishers {
		err = errors.Join(err, <-errs)
	}
	return err
}

// filler pads each order to about 1 KiB.
var filler = strings.Repeat("x", 420)

// order is the load generator's order i (tools/loadgen's change, its
// payload): the JSON document bento.yaml's mapping reads, published as the
// message body as it is. Its status is paid, so the mapping keeps every one.
func order(prefix string, i int) []byte {
	key := prefix + strconv.Itoa(i)
	return fmt.Appendf(nil, `{"number":"SO-%s","status":"paid","currency":"EUR","total":%d.95,`+
		`"customer":{"name":"Customer %d","email":"Customer%d@Example.com","company":"Company %d BV","phone":"+31 20 555 %04d"},`+
		`"shipping":{"street":"Keizersgracht %d","city":"Amsterdam","zip":"1015 CJ","country":"NL"},`+
		`"lines":[{"sku":"100%04d","qty":2,"price":19.95},{"sku":"200%04d","qty":1,"price":%d.05}],"note":%q}`,
		key, i%1000, i, i, i, i%10000, i%500, i%10000, i%10000, i%900, filler)
}
