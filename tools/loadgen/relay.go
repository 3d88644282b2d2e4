package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/natsserver"
	"github.com/syncline/syncline/tools/internal/bench"
)

// The bare relay is the limit of this machine for a pipeline of Syncline's
// shape: four file-backed JetStream streams and three relays between them,
// each consuming with explicit acks, publishing its output to the next
// stream and acknowledging its input once the stream has stored the output
// (its PubAck) — the least a four-stage at-least-once pipeline does, with
// none of a stage's own work: no decoding, mapping, ledger, target or
// message ids. A load generator publishes into the first stream and a
// consumer drains the last, in one process with the embedded server, as the
// all-in-one mode runs.
//
// Each message carries one event, or, with -relay-batched, each hop
// carries one message per batch of up to bus.DefaultConfig().MaxBatch
// events (what had arrived when the hop took its input), as hops that
// carry batches would.

// relayStreams are the relay's streams.
const relayStreams = 4

// relayInflight bounds each hop's outputs awaiting their PubAck; the hops'
// publisher allows all of theirs (jetstream.WithPublishAsyncMaxPending), so
// that a publish never stalls.
const relayInflight = 4000

// relayReport is the bare relay's figures; the child prints it as JSON.
type relayReport struct {
	// Batch is the most events one message carries between stages.
	Batch           int
	Events          int
	EventsPerSecond float64
	// Messages counts the messages the four streams stored.
	Messages     uint64
	Cost         cost
	PeakRSSBytes int64
}

func relayChild(ctx context.Context, f flags) error {
	if f.events < 1 {
		return fmt.Errorf("-events %d: give at least 1", f.events)
	}
	dir, err := os.MkdirTemp("", "syncline-relay-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The server as the all-in-one mode starts it (tools/allinone's
	// startBus): the same package and settings, so JetStream's default
	// fsync interval, and a client listener on a random port for the load
	// generator. It runs open: Syncline's authorization costs only when a
	// connection is made.
	srv, err := natsserver.Start(natsserver.Config{Dir: filepath.Join(dir, "nats"), Port: -1})
	if err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = srv.Stop(stopCtx)
	}()
	// The load generator connects over TCP, as it does to Syncline; the
	// relays and the drain share one connection in process, as the
	// all-in-one mode's stages do (which also moved more events per second
	// here than a connection per stage).
	nc, err := nats.Connect(srv.ClientURL(), nats.Name("relay load"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		return err
	}
	cfg := bus.DefaultConfig()
	for i := range relayStreams {
		if _, err := js.CreateStream(ctx, relayStreamConfig(cfg, i)); err != nil {
			return fmt.Errorf("creating the relay's stream %d: %w", i+1, err)
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, relayStreams)
	var drained, missed atomic.Int64
	done := make(chan time.Time, 1)
	conn, err := srv.Connect("relay")
	if err != nil {
		return err
	}
	defer conn.Close()
	hjs, err := jetstream.New(conn, jetstream.WithPublishAsyncMaxPending(relayStreams*relayInflight))
	if err != nil {
		return err
	}
	for i := range relayStreams {
		cons, err := hjs.CreateConsumer(ctx, relayStreamName(i), jetstream.ConsumerConfig{
			Durable: "relay", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
			AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver, MaxAckPending: cfg.MaxAckPending, MaxWaiting: 512,
		})
		if err != nil {
			return fmt.Errorf("creating the consumer of the relay's stream %d: %w", i+1, err)
		}
		// As Syncline's stages pull (bus.Consumer).
		iter, err := cons.Messages(bus.PullOptions(cfg, 16<<20)...)
		if err != nil {
			return fmt.Errorf("consuming the relay's stream %d: %w", i+1, err)
		}
		defer iter.Stop()
		h := hop{in: iter, framed: i > 0 && f.relayBatch > 1, batch: f.relayBatch, missed: &missed}
		var run func(context.Context) error
		switch {
		case i == relayStreams-1:
			run = func(context.Context) error { return h.drain(f.events, &drained, done) }
		case f.relayBatch > 1:
			run = func(ctx context.Context) error { return h.relayBatches(ctx, hjs, relaySubject(i+1)) }
		default:
			run = func(ctx context.Context) error { return h.relayEach(ctx, hjs, relaySubject(i+1)) }
		}
		go func() {
			if err := run(runCtx); err != nil && runCtx.Err() == nil {
				errs <- fmt.Errorf("relay stage %d: %w", i+1, err)
			}
		}()
	}

	r := relayReport{Batch: f.relayBatch, Events: f.events}
	stopProfile, err := cpuProfile(f.profile, fmt.Sprintf(".relay%d", f.relayBatch))
	if err != nil {
		return err
	}
	defer stopProfile()
	resetPeakRSS()
	m, err := startMeter(ctx, nil)
	if err != nil {
		return err
	}
	pubErr := make(chan error, 1)
	var publisherCPU time.Duration
	go func() {
		var err error
		publisherCPU, err = publishElsewhere(runCtx, "relay", srv.ClientURL(), "", f.events, f.batch)
		pubErr <- err
	}()
	var last time.Time
	published := false
	timeout := time.After(5 * time.Minute)
	for last.IsZero() {
		select {
		case last = <-done:
		case err := <-pubErr:
			if err != nil {
				return fmt.Errorf("publishing into the relay: %w", err)
			}
			published = true
		case err := <-errs:
			return err
		case <-timeout:
			return fmt.Errorf("only %d of %d events came through the relay within 5 minutes", drained.Load(), f.events)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if r.Cost, err = m.stop(ctx, f.events); err != nil {
		return err
	}
	// The last event came through, so the publisher is done or ending.
	if !published {
		if err := <-pubErr; err != nil {
			return fmt.Errorf("publishing into the relay: %w", err)
		}
	}
	r.Cost.PublisherCPUMicros = float64(publisherCPU.Microseconds()) / float64(f.events)
	stopProfile()
	heapProfile(f.profile, fmt.Sprintf(".relay%d.heap", f.relayBatch))
	r.PeakRSSBytes = bench.PeakRSS(0)
	r.EventsPerSecond = float64(f.events) / last.Sub(m.start).Seconds()
	cancel()

	// Every stream holds what went through it: in the relay of one message
	// per event, each exactly the events, unless a hop's input was delivered
	// again (at least once allows that; it should not happen here).
	for i := range relayStreams {
		st, err := js.Stream(ctx, relayStreamName(i))
		if err != nil {
			return err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		r.Messages += info.State.Msgs
		if (i == 0 || f.relayBatch == 1) && info.State.Msgs != uint64(f.events) {
			fmt.Fprintf(os.Stderr, "  the relay's stream %d holds %d messages, not one per event (%d): a hop published some events again\n", i+1, info.State.Msgs, f.events)
		}
	}
	fmt.Fprintf(os.Stderr, "  %d events, %d messages stored in %d streams; cpu %.1f s; heartbeats missed %d\n",
		f.events, r.Messages, relayStreams, r.Cost.CPUMicros*float64(f.events)/1e6, missed.Load())
	return json.NewEncoder(os.Stdout).Encode(r)
}

func relayStreamName(i int) string { return fmt.Sprintf("RELAY_%d", i+1) }

func relaySubject(i int) string { return fmt.Sprintf("relay.%d", i+1) }

// relayStreamConfig is the relay's stream i, set as Syncline's pipeline
// streams are (see pkg/bus's streamConfigs).
func relayStreamConfig(c bus.Config, i int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       relayStreamName(i),
		Subjects:   []string{relaySubject(i)},
		Retention:  jetstream.LimitsPolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   c.Replicas,
		MaxAge:     c.MaxAge,
		Discard:    jetstream.DiscardOld,
		Duplicates: c.InternalDuplicates,
	}
}

// relayPublish publishes events 1 KiB orders into the first stream, one
// message each, as the Syncline burst does: from four publishers at once,
// batch at a time, each batch sent whole before its acknowledgements are
// awaited.
func relayPublish(ctx context.Context, js jetstream.JetStream, events, batch int) error {
	return inBatches(events, batch, func() func(from, to int) error {
		futures := make([]jetstream.PubAckFuture, 0, batch)
		return func(from, to int) error {
			futures = futures[:0]
			for i := from; i < to; i++ {
				f, err := js.PublishMsgAsync(&nats.Msg{Subject: relaySubject(0), Data: change("R", i).Payload})
				if err != nil {
					return err
				}
				futures = append(futures, f)
			}
			for _, f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					return err
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}
	})
}

// hop is one stage of the relay: its input and how that is framed.
type hop struct {
	in jetstream.MessagesContext
	// framed says the input messages are frames of events (see frame);
	// otherwise each is one event.
	framed bool
	batch  int
	// missed counts the heartbeats the hop missed.
	missed *atomic.Int64
}

// next returns the hop's next input. A missed heartbeat (neither a message
// nor a heartbeat for two seconds, which a busy machine causes now and then)
// is passed over: the iterator then asks the server for messages again by
// itself.
func (h hop) next() (jetstream.Msg, error) {
	for {
		m, err := h.in.Next()
		if errors.Is(err, jetstream.ErrNoHeartbeat) {
			h.missed.Add(1)
			continue
		}
		return m, err
	}
}

// output is a hop's published output and the inputs it acknowledges once
// stored.
type output struct {
	stored jetstream.PubAckFuture
	inputs []jetstream.Msg
}

// relayEach publishes each input as one message to subject.
func (h hop) relayEach(ctx context.Context, js jetstream.JetStream, subject string) error {
	outs, acked := ackStored(ctx)
	defer close(outs)
	for {
		m, err := h.next()
		if err != nil {
			return err
		}
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: m.Data()})
		if err != nil {
			return err
		}
		select {
		case outs <- output{stored: f, inputs: []jetstream.Msg{m}}:
		case err := <-acked:
			return err
		}
	}
}

// relayBatches publishes the inputs that have arrived, up to h.batch events,
// as one frame to subject.
func (h hop) relayBatches(ctx context.Context, js jetstream.JetStream, subject string) error {
	outs, acked := ackStored(ctx)
	defer close(outs)
	// The inputs go through a channel, so that the hop can take what has
	// arrived without waiting for more (as bus.Consumer does).
	msgs := make(chan jetstream.Msg, h.batch)
	var stopped error
	go func() {
		defer close(msgs)
		for {
			m, err := h.next()
			if err != nil {
				stopped = err
				return
			}
			msgs <- m
		}
	}()
	var carry jetstream.Msg
	for {
		first := carry
		if first == nil {
			var ok bool
			if first, ok = <-msgs; !ok {
				return stopped
			}
		}
		carry = nil
		inputs := []jetstream.Msg{first}
		// The frame's count goes in front once known, in the room left for it.
		body := make([]byte, binary.MaxVarintLen64, binary.MaxVarintLen64+2*len(first.Data()))
		n, body, err := h.appendEvents(body, first)
		if err != nil {
			return err
		}
	gather:
		for n < h.batch {
			select {
			case m, ok := <-msgs:
				if !ok {
					break gather
				}
				k, err := h.events(m)
				if err != nil {
					return err
				}
				if n+k > h.batch {
					carry = m
					break gather
				}
				if _, body, err = h.appendEvents(body, m); err != nil {
					return err
				}
				n += k
				inputs = append(inputs, m)
			default:
				break gather
			}
		}
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: frame(n, body)})
		if err != nil {
			return err
		}
		select {
		case outs <- output{stored: f, inputs: inputs}:
		case err := <-acked:
			return err
		}
	}
}

// drain acknowledges the last stream's messages and counts their events;
// it sends the time the count reaches want on done.
func (h hop) drain(want int, count *atomic.Int64, done chan<- time.Time) error {
	for {
		m, err := h.next()
		if err != nil {
			return err
		}
		n, err := h.events(m)
		if err != nil {
			return err
		}
		if err := m.Ack(); err != nil {
			return err
		}
		// Sent once: a redelivered message can only add to the count.
		if after := count.Add(int64(n)); after >= int64(want) && after-int64(n) < int64(want) {
			done <- time.Now()
		}
	}
}

// ackStored acknowledges each output's inputs once the stream has stored the
// output, in order; it reports the first failure on the returned error
// channel and stops. It ends when the output channel is closed.
func ackStored(ctx context.Context) (chan<- output, <-chan error) {
	outs := make(chan output, relayInflight)
	failed := make(chan error, 1)
	go func() {
		for o := range outs {
			select {
			case <-o.stored.Ok():
			case err := <-o.stored.Err():
				failed <- fmt.Errorf("storing an output: %w", err)
				return
			case <-ctx.Done():
				return
			}
			for _, m := range o.inputs {
				if err := m.Ack(); err != nil {
					failed <- fmt.Errorf("acknowledging an input: %w", err)
					return
				}
			}
		}
	}()
	return outs, failed
}

// A frame is events in one message: a uvarint count, then each event as a
// uvarint length and its bytes. frame puts the count n in front of body,
// whose first binary.MaxVarintLen64 bytes are left for it.
func frame(n int, body []byte) []byte {
	var count [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(count[:], uint64(n))
	start := binary.MaxVarintLen64 - k
	copy(body[start:], count[:k])
	return body[start:]
}

// events counts the events of an input message.
func (h hop) events(m jetstream.Msg) (int, error) {
	if !h.framed {
		return 1, nil
	}
	n, k := binary.Uvarint(m.Data())
	if k <= 0 {
		return 0, fmt.Errorf("a frame on %s has no event count", m.Subject())
	}
	return int(n), nil
}

// appendEvents appends an input's events to a frame's body.
func (h hop) appendEvents(body []byte, m jetstream.Msg) (int, []byte, error) {
	data := m.Data()
	if !h.framed {
		return 1, append(binary.AppendUvarint(body, uint64(len(data))), data...), nil
	}
	n, k := binary.Uvarint(data)
	if k <= 0 {
		return 0, body, fmt.Errorf("a frame on %s has no event count", m.Subject())
	}
	return int(n), append(body, data[k:]...), nil
}
