package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BatchHandler handles one batch of messages in stream order. It returns how
// many leading messages are finished — their outputs are durably published,
// their effects durably applied, or they were dead-lettered — and, when that
// is fewer than len(msgs), the error that stopped message done. The consumer
// redelivers the unfinished rest after a back-off and dead-letters a message
// that keeps failing. ctx is cancelled only when a stop's deadline passes.
type BatchHandler func(ctx context.Context, msgs []jetstream.Msg) (done int, err error)

// ConsumerDeps are what a Consumer needs besides its spec.
type ConsumerDeps struct {
	JetStream jetstream.JetStream
	Config    Config
	Logger    *slog.Logger
	Metrics   *Metrics
	Handler   BatchHandler
	// OnOpen, if set, runs each time the consumer (re)opens, before any
	// batch: a stage that keeps state derived from the bus reloads it there,
	// since another process may have run the consumer in between.
	OnOpen func(ctx context.Context) error
	// Tick, if set, runs every TickEvery between batches, in the consumer's
	// own goroutine, so it never overlaps the handler: work a stage must
	// order with its batches (releasing held events, say) goes there. An
	// error is logged and the next tick tries again.
	Tick      func(ctx context.Context) error
	TickEvery time.Duration
}

// Consumer runs one durable pull consumer of one stage: it fetches
// continuously, hands the handler whatever has arrived (one message when
// traffic is light, up to MaxBatch under load, so latency stays low and
// throughput high), and acknowledges the last finished message. The
// consumer's ack policy is AckAll, so that one ack finishes the whole prefix:
// a batch costs one acknowledgement, not one per event.
//
// AckAll has a price that this type pays: acknowledging a message also
// acknowledges every earlier one, so no earlier message may still be
// unfinished. The consumer therefore never lets a later message overtake an
// unfinished one. Each time it starts, and after each failure, it rewinds the
// durable consumer to its ack floor (the first unacknowledged message), so
// everything not acknowledged is delivered again, in order, before anything
// newer. A stop needs to give nothing back: what it leaves unacknowledged is
// the next start's first delivery. Only one process may run a given durable
// at a time.
type Consumer struct {
	deps ConsumerDeps
	spec ConsumerSpec
	log  *slog.Logger
	dead *deadLetterer

	// failures counts failed attempts per message (or event of a frame)
	// across rewinds.
	failures map[position]int
	// partial holds, per frame whose events are finished only in part, how
	// many of its first events are: a frame is acknowledged once all its
	// events are, and a rewind delivers it whole again, so these are not
	// handed over a second time by this process. Another process (after a
	// crash or a move of the partition) hands them over again, which every
	// stage makes harmless, as for any redelivery.
	partial map[uint64]int
	// recent are the events finished within the duplicate window, on the
	// flow and push streams (nil on the others).
	recent *recentIDs
	// lastAck is the last message acknowledged, confirmed at a stop.
	lastAck jetstream.Msg
	// restoreStreams asks the next open to create lost streams again.
	restoreStreams bool
	// created is the durable's configuration as this run last wrote it.
	created jetstream.ConsumerConfig
	// delivered is the durable's last delivery number when it was opened
	// (see pump).
	delivered uint64
	// crashFloor and crashes count the runs in a row that ended without
	// finishing the first message after the ack floor crashFloor (see
	// crashes.go); up to carefulUntil the consumer hands over one message
	// at a time, so that a crash points at one message.
	crashFloor   uint64
	crashes      int
	carefulUntil uint64

	stopping chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	handlerCtx    context.Context
	cancelHandler context.CancelFunc
}

// NewConsumer returns a consumer; Start creates it on the server and runs it.
func NewConsumer(spec ConsumerSpec, deps ConsumerDeps) *Consumer {
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("stage", spec.Stage, "consumer", spec.Durable)
	c := &Consumer{
		deps:     deps,
		spec:     spec,
		log:      log,
		dead:     &deadLetterer{pub: NewPublisher(deps.JetStream), stage: spec.Stage},
		failures: map[position]int{},
		partial:  map[uint64]int{},
	}
	// An event handled twice costs the dedup stage a ledger decision and the
	// connector a target call; an audit record written twice only replaces
	// itself, so the audit stream's readers skip the bookkeeping.
	if spec.Stream == StreamFlow || spec.Stream == StreamPush {
		c.recent = newRecentIDs(deps.Config.InternalDuplicates)
	}
	return c
}

// Start rewinds the durable consumer to its ack floor (creating it the first
// time) and starts fetching. ctx bounds the set-up only. A stopped consumer
// may be started again.
func (c *Consumer) Start(ctx context.Context) error {
	iter, err := c.open(ctx, true)
	if err != nil {
		return err
	}
	c.stopping = make(chan struct{})
	c.done = make(chan struct{})
	c.stopOnce = sync.Once{}
	c.lastAck = nil
	c.handlerCtx, c.cancelHandler = context.WithCancel(context.Background())
	c.deps.Metrics.running(c.spec, true)
	go c.run(iter)
	return nil
}

// Stop stops fetching and lets the batch in hand finish. When ctx ends first,
// the batch in hand is cancelled and left unacknowledged. Either way nothing
// unfinished is ever acknowledged, and the next Start delivers it again.
func (c *Consumer) Stop(ctx context.Context) error {
	if c.done == nil {
		return nil
	}
	c.stopOnce.Do(func() { close(c.stopping) })
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		c.cancelHandler()
		<-c.done
		return fmt.Errorf("stopping consumer %s: %w", c.spec.Durable, ctx.Err())
	}
}

// open rewinds the durable consumer to its ack floor and subscribes. At a
// start (not a rewind within a run) it counts whether the last run died on
// the first unfinished message, and dead-letters that message when runs
// died on it MaxDeliver times in a row.
func (c *Consumer) open(ctx context.Context, start bool) (jetstream.MessagesContext, error) {
	js, cfg := c.deps.JetStream, consumerConfig(c.deps.Config, c.spec)
	if c.restoreStreams {
		// An output stream did not answer: a server that restarted without
		// its files has lost it, and nothing else would create it again.
		if err := EnsureStreams(ctx, js, c.deps.Config); err != nil {
			return nil, err
		}
		c.restoreStreams = false
	}
	cons, err := js.Consumer(ctx, c.spec.Stream, c.spec.Durable)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if err := EnsureStreams(ctx, js, c.deps.Config); err != nil {
			return nil, err
		}
		cons, err = js.Consumer(ctx, c.spec.Stream, c.spec.Durable)
	}
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		c.crashFloor, c.crashes, c.carefulUntil = 0, 0, 0
		cfg.Metadata = c.runMetadata()
		cons, err = js.CreateConsumer(ctx, c.spec.Stream, cfg)
	case err == nil:
		info := cons.CachedInfo()
		floor := ackFloor(info)
		inFlight := info.NumAckPending > 0 || info.Delivered.Stream > floor
		if start {
			c.countCrash(info, inFlight)
			if c.recent != nil {
				if err := c.rememberFinished(ctx, floor); err != nil {
					return nil, err
				}
			}
		} else if floor != c.crashFloor {
			c.crashFloor, c.crashes = floor, 0
		}
		if c.crashes >= c.deps.Config.MaxDeliver {
			seq, err := c.deadLetterCrashed(ctx, floor)
			if err != nil {
				return nil, err
			}
			if seq != floor {
				floor, inFlight = seq, true
			}
			c.crashFloor, c.crashes = floor, 0
		}
		cfg.Metadata = c.runMetadata()
		if !inFlight {
			// Nothing delivered is unacknowledged: no need to rewind.
			// Where it starts cannot change; the rest can be updated.
			cfg.DeliverPolicy, cfg.OptStartSeq = info.Config.DeliverPolicy, info.Config.OptStartSeq
			cons, err = js.CreateOrUpdateConsumer(ctx, c.spec.Stream, cfg)
			break
		}
		if err = js.DeleteConsumer(ctx, c.spec.Stream, c.spec.Durable); err != nil {
			return nil, fmt.Errorf("rewinding consumer %s: %w", c.spec.Durable, err)
		}
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = floor + 1
		cons, err = js.CreateConsumer(ctx, c.spec.Stream, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("creating consumer %s on %s: %w", c.spec.Durable, c.spec.Stream, err)
	}
	c.created = cfg
	c.delivered = 0
	if info := cons.CachedInfo(); info != nil {
		c.delivered = info.Delivered.Consumer
		for seq := range c.partial {
			if seq <= ackFloor(info) {
				delete(c.partial, seq)
			}
		}
	}
	iter, err := cons.Messages(PullOptions(c.deps.Config, c.pullBytes())...)
	if err != nil {
		return nil, fmt.Errorf("subscribing consumer %s: %w", c.spec.Durable, err)
	}
	if c.deps.OnOpen != nil {
		if err := c.deps.OnOpen(ctx); err != nil {
			iter.Stop()
			return nil, fmt.Errorf("opening consumer %s: %w", c.spec.Durable, err)
		}
	}
	return iter, nil
}

// run consumes until stopped, rewinding after every failure.
func (c *Consumer) run(iter jetstream.MessagesContext) {
	defer close(c.done)
	defer c.deps.Metrics.running(c.spec, false)
	defer c.cancelHandler()
	defer c.finish()
	for {
		failed := c.consume(iter)
		iter.Stop()
		if !failed {
			return
		}
		for {
			if !c.sleep(c.deps.Config.backoff(c.maxFailures())) {
				return
			}
			ctx, cancel := context.WithTimeout(c.handlerCtx, 30*time.Second)
			var err error
			iter, err = c.open(ctx, false)
			cancel()
			if err == nil {
				break
			}
			c.log.Warn("rewinding after a failure", "error", err)
		}
	}
}

// consume handles batches until the consumer stops (false) or a batch fails
// (true), after acknowledging the batch's finished prefix.
func (c *Consumer) consume(iter jetstream.MessagesContext) bool {
	msgs := make(chan jetstream.Msg, c.deps.Config.MaxBatch)
	go pump(iter, msgs, framedStream(c.spec.Stream), c.delivered, c.log)
	batch := make([]jetstream.Msg, 0, c.deps.Config.MaxBatch)
	var tick <-chan time.Time
	if c.deps.Tick != nil && c.deps.TickEvery > 0 {
		t := time.NewTicker(c.deps.TickEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		var m jetstream.Msg
		var ok bool
		select {
		case m, ok = <-msgs:
			if !ok {
				// The iterator ended by itself: the connection, the
				// consumer or its heartbeats were lost. Open it again.
				return !c.isStopping()
			}
			if c.finishedBefore(m) {
				continue
			}
			if c.duplicate(m) {
				c.skipDuplicate(m)
				continue
			}
		case <-tick:
			if err := c.deps.Tick(c.handlerCtx); err != nil && c.handlerCtx.Err() == nil {
				c.log.Warn("periodic work failed; retrying at the next tick", "error", err)
			}
			continue
		case <-c.stopping:
			return false
		}
		batch = append(batch[:0], m)
		var dup jetstream.Msg
		if !c.careful(m) {
			batch, dup = c.fill(batch, msgs)
		}
		if !c.handle(batch) {
			return !c.isStopping() && c.handlerCtx.Err() == nil
		}
		if dup != nil {
			c.skipDuplicate(dup)
		}
		if c.isStopping() {
			return false
		}
	}
}

// fill adds to batch what has arrived, up to MaxBatch; with a linger it
// waits that long for more. A duplicate ends the batch: it is returned, to
// be finished once the batch before it is.
func (c *Consumer) fill(batch []jetstream.Msg, msgs <-chan jetstream.Msg) ([]jetstream.Msg, jetstream.Msg) {
	var deadline <-chan time.Time
	if c.spec.Linger > 0 {
		t := time.NewTimer(c.spec.Linger)
		defer t.Stop()
		deadline = t.C
	}
	for len(batch) < cap(batch) {
		if deadline == nil {
			select {
			case m, ok := <-msgs:
				if !ok {
					return batch, nil
				}
				if c.duplicate(m) {
					return batch, m
				}
				if !c.finishedBefore(m) {
					batch = append(batch, m)
				}
			default:
				return batch, nil
			}
			continue
		}
		select {
		case m, ok := <-msgs:
			if !ok {
				return batch, nil
			}
			if c.duplicate(m) {
				return batch, m
			}
			if !c.finishedBefore(m) {
				batch = append(batch, m)
			}
		case <-deadline:
			return batch, nil
		case <-c.stopping:
			return batch, nil
		}
	}
	return batch, nil
}

// parsedMsg is a message from the server with its metadata parsed once.
type parsedMsg struct {
	jetstream.Msg
	md *jetstream.MsgMetadata
}

// Metadata is the message's, parsed when it arrived.
func (m *parsedMsg) Metadata() (*jetstream.MsgMetadata, error) { return m.md, nil }

// pump moves messages from the iterator into a channel the consumer can
// drain without blocking, which is what lets it build batches of whatever
// has arrived; on a framed stream a frame goes in as its events, one by one. It ends when the iterator is stopped, or stops it when the
// server's heartbeats stop: the server restarted or lost the consumer, and
// the consumer opens it again.
//
// Deliveries are numbered by the consumer, one after the other. A number
// skipped is a delivery this process never got (a client that fell behind
// drops what it cannot buffer), and acknowledging anything after it would
// acknowledge it too (AckAll): so a gap also ends the pump, and the
// consumer rewinds to its ack floor. delivered is the last number the
// durable had given out when it was opened.
func pump(iter jetstream.MessagesContext, out chan<- jetstream.Msg, frames bool, delivered uint64, log *slog.Logger) {
	defer close(out)
	for {
		m, err := iter.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				log.Warn("the server stopped sending heartbeats; opening the consumer again")
				iter.Stop()
				return
			}
			// The iterator recovers from the others by itself.
			log.Warn("fetching messages", "error", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if md, err := m.Metadata(); err == nil {
			if md.Sequence.Consumer != delivered+1 {
				log.Warn("a delivery never arrived (the client fell behind and dropped it); rewinding to the ack floor",
					"expected", delivered+1, "got", md.Sequence.Consumer)
				iter.Stop()
				return
			}
			delivered = md.Sequence.Consumer
			// The client parses the metadata anew at every call, and the
			// consumer and its stage ask several times per message.
			m = &parsedMsg{Msg: m, md: md}
		}
		if !frames {
			out <- m
			continue
		}
		for _, it := range items(m) {
			out <- it
		}
	}
}

// finishedBefore reports whether m is an event of a frame that this
// process finished before a rewind delivered the frame again.
func (c *Consumer) finishedBefore(m jetstream.Msg) bool {
	f, ok := m.(*frameItem)
	return ok && f.index < c.partial[f.md.Sequence.Stream]
}

// duplicate reports whether m is an event this consumer finished within the
// duplicate window, published again (see recentIDs).
func (c *Consumer) duplicate(m jetstream.Msg) bool {
	return c.recent != nil && c.recent.seen(m)
}

// skipDuplicate finishes a duplicate without handing it over. Everything
// before it must be finished: acknowledging it acknowledges them.
func (c *Consumer) skipDuplicate(m jetstream.Msg) {
	c.deps.Metrics.observeDuplicate(c.spec.Stage)
	c.ack(m)
}

// pullBytes bounds the bytes one pull brings: room for MaxBatch frames of
// a few events, and for the largest message the server takes.
func (c *Consumer) pullBytes() int {
	n := 16 << 20
	if nc := c.deps.JetStream.Conn(); nc != nil {
		n = max(n, 2*int(nc.MaxPayload()))
	}
	return n
}

// statusRoom is what a pull asks for beyond MaxAckPending: room in the
// client's channel for the server's statuses (heartbeats, the end of a pull
// request with the count it did not deliver).
const statusRoom = 256

// PullOptions are how a consumer pulls: short requests with frequent
// heartbeats, at most maxBytes at a time, for MaxAckPending messages and
// statusRoom more.
//
// The iterator's channel holds exactly what a pull asks for, and the
// server's statuses share it with the messages. The server never sends more
// than MaxAckPending unacknowledged messages, so the channel always has
// statusRoom free for statuses, even while a stage takes long over a batch
// and the channel fills. A full channel made the client drop them (a slow
// consumer): it lost count of its requests, stopped pulling, and two seconds
// later reported the server lost, which cost a rewind in the middle of a
// burst.
//
// If a pull request is lost (the client notices by the missing heartbeats),
// the iterator issues a new one within two seconds, instead of the thirty
// that the defaults allow a quiet consumer to sit idle with events waiting.
// Missing heartbeats are reported rather than waited out, so that a
// consumer the server has lost is noticed and created again.
func PullOptions(c Config, maxBytes int) []jetstream.PullMessagesOpt {
	return []jetstream.PullMessagesOpt{
		jetstream.PullMaxMessagesWithBytesLimit(c.MaxAckPending+statusRoom, maxBytes),
		jetstream.PullExpiry(5 * time.Second), jetstream.PullHeartbeat(time.Second),
		jetstream.WithMessagesErrOnMissingHeartbeat(true),
	}
}

// handle runs the handler on a batch. It returns true when the whole batch is
// finished; false when a message failed (the finished prefix is acknowledged,
// the rest will be delivered again after a rewind). A permanent failure (see
// PermanentError) is dead-lettered at once, after handing the batch over in
// halves (window) until the message that fails is alone.
func (c *Consumer) handle(batch []jetstream.Msg) bool {
	window := len(batch)
	for len(batch) > 0 {
		window = min(window, len(batch))
		start := time.Now()
		done, err := c.deps.Handler(c.handlerCtx, batch[:window])
		done = min(max(done, 0), window)
		c.deps.Metrics.observeBatch(c.spec.Stage, done, time.Since(start))
		if done > 0 {
			c.complete(batch[:done])
			// Reading a message's sequence parses its metadata: skip it
			// in the common case that nothing has failed.
			if len(c.failures) > 0 {
				for _, m := range batch[:done] {
					delete(c.failures, positionOf(m))
				}
			}
			batch = batch[done:]
		}
		if done == window {
			window = len(batch)
			continue
		}
		if err == nil {
			err = errors.New("the handler finished part of the batch without saying why")
		}
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			c.restoreStreams = true
		}
		if c.handlerCtx.Err() != nil {
			return false
		}
		if perm := (*PermanentError)(nil); errors.As(err, &perm) {
			if rest := window - done; rest > 1 {
				window = rest / 2
				continue
			}
			if !c.deadLetter(batch[0], perm.Code, err.Error()) {
				return false
			}
			delete(c.failures, positionOf(batch[0]))
			batch = batch[1:]
			window = len(batch)
			continue
		}
		pos := positionOf(batch[0])
		c.failures[pos]++
		c.deps.Metrics.observeRetry(c.spec.Stage)
		if c.failures[pos] < c.deps.Config.MaxDeliver {
			c.log.Warn("batch failed; retrying from the failed message", "sequence", pos.seq, "event", pos.index, "attempt", c.failures[pos], "error", err)
			return false
		}
		if !c.deadLetter(batch[0], CodeRetriesExhausted, fmt.Sprintf("gave up after %d attempts: %v", c.failures[pos], err)) {
			return false
		}
		delete(c.failures, pos)
		batch = batch[1:]
		window = len(batch)
	}
	return true
}

func (c *Consumer) maxFailures() int {
	n := 1
	for _, f := range c.failures {
		n = max(n, f)
	}
	return n
}

func (c *Consumer) deadLetter(m jetstream.Msg, code, reason string) bool {
	if err := c.dead.publish(c.handlerCtx, m, code, reason); err != nil {
		c.log.Error("dead-lettering message", "sequence", sequence(m), "error", err)
		return false
	}
	c.deps.Metrics.observeDeadLetter(c.spec.Stage)
	if c.recent != nil {
		c.recent.add([]jetstream.Msg{m})
	}
	c.ack(m)
	return true
}

// sleep waits for d; it returns false when the consumer is stopping.
func (c *Consumer) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.stopping:
		return false
	}
}

func (c *Consumer) isStopping() bool {
	select {
	case <-c.stopping:
		return true
	default:
		return false
	}
}

// confirmLastAck waits until the server has processed the last
// acknowledgement (acks are asynchronous), so that the next start begins
// right after it instead of repeating the last batch.
func (c *Consumer) confirmLastAck() {
	if c.lastAck == nil {
		return
	}
	seq := sequence(c.lastAck)
	ctx, cancel := context.WithTimeout(c.handlerCtx, 5*time.Second)
	defer cancel()
	for {
		cons, err := c.deps.JetStream.Consumer(ctx, c.spec.Stream, c.spec.Durable)
		if err == nil && cons.CachedInfo().AckFloor.Stream >= seq {
			return
		}
		select {
		case <-ctx.Done():
			c.log.Debug("confirming the last acknowledgement", "sequence", seq, "error", ctx.Err())
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// complete acknowledges a finished prefix of a batch: its last message, or
// when that is an event of a frame not yet finished, the last message before
// the frame (and the frame's finished events are remembered, see partial).
func (c *Consumer) complete(done []jetstream.Msg) {
	if c.recent != nil {
		c.recent.add(done)
	}
	last := done[len(done)-1]
	c.ack(last)
	f, ok := last.(*frameItem)
	if !ok || f.last() {
		return
	}
	for i := len(done) - 2; i >= 0; i-- {
		if g, ok := done[i].(*frameItem); !ok || g.frame != f.frame {
			c.ack(done[i])
			return
		}
	}
}

// ack acknowledges m and everything before it. An event of a frame
// acknowledges its frame when it is the frame's last; before that it only
// records that the frame's events up to it are finished.
func (c *Consumer) ack(m jetstream.Msg) {
	if f, ok := m.(*frameItem); ok {
		seq := f.md.Sequence.Stream
		if !f.last() {
			c.partial[seq] = f.index + 1
			return
		}
		delete(c.partial, seq)
		m = f.frame
	}
	c.lastAck = m
	if err := m.Ack(); err != nil {
		// The ack is lost only with the connection; the messages are then
		// delivered again, which every stage makes harmless.
		c.log.Warn("acknowledging messages", "sequence", sequence(m), "error", err)
	}
}

func deliveries(m jetstream.Msg) int {
	md, err := m.Metadata()
	if err != nil {
		return 1
	}
	return int(md.NumDelivered)
}

func sequence(m jetstream.Msg) uint64 {
	md, err := m.Metadata()
	if err != nil {
		return 0
	}
	return md.Sequence.Stream
}

// Deliveries returns how many times the server has delivered m, for the
// attempts column of the API log.
func Deliveries(m jetstream.Msg) int { return deliveries(m) }

// ackFloor is the stream sequence up to which a durable has acknowledged
// everything. A durable created at a start sequence (a rewind) has
// acknowledged everything before it, though a clustered server reports an
// ack floor of 0 until its first acknowledgement: taken at its word, the
// next rewind would read the whole stream again.
func ackFloor(info *jetstream.ConsumerInfo) uint64 {
	floor := info.AckFloor.Stream
	if info.Config.DeliverPolicy == jetstream.DeliverByStartSequencePolicy && info.Config.OptStartSeq > 0 {
		floor = max(floor, info.Config.OptStartSeq-1)
	}
	return floor
}
