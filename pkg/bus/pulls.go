package bus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A pull request lives pullExpiry and, while it waits for messages, the
// server sends a heartbeat every pullHeartbeat: a request the server lost
// is noticed within two heartbeats, not at its expiry.
const (
	pullExpiry    = 5 * time.Second
	pullHeartbeat = time.Second
)

// pulls are a consumer's deliveries, asked for by one pull request (Fetch)
// at a time: the consumer's iterator (jetstream.MessagesContext).
//
// jetstream's own iterator (Consumer.Messages) is not used: its channel
// holds exactly the messages it asks for, and the server's status messages
// (heartbeats, the end of a pull request with the count of what it did not
// deliver) share that channel. A stage busy with a batch for a few seconds
// lets the channel fill, and the client drops what comes next as from a
// slow consumer. A dropped end of a request leaves the iterator counting on
// messages that will never come; it stops asking, the heartbeats stop with
// the requests, and two seconds later it reports the server lost: a
// rewind, with a second of backoff and everything in flight delivered
// again, in the middle of a burst, for nothing. A Fetch's channel holds
// twice what it asks for and is read as messages arrive, so nothing the
// server sends is dropped, and a missing heartbeat is one the server did
// not send.
type pulls struct {
	nc    *nats.Conn
	cons  jetstream.Consumer
	batch int // messages per request
	bytes int // bytes per request
	ctx   context.Context
	stop  context.CancelFunc

	cur        jetstream.MessageBatch // the request being read, nil between requests
	cancel     context.CancelFunc     // cur's
	reconnects uint64                 // the connection's count when cur was asked for
}

// Pulls returns cons's deliveries as a consumer of this package reads
// them: pull requests of batch messages and at most bytes, one at a time,
// on nc, cons's connection.
func Pulls(nc *nats.Conn, cons jetstream.Consumer, batch, bytes int) jetstream.MessagesContext {
	return newPulls(nc, cons, batch, bytes)
}

func newPulls(nc *nats.Conn, cons jetstream.Consumer, batch, bytes int) *pulls {
	ctx, stop := context.WithCancel(context.Background())
	// At least a few: a request's channel must hold its heartbeats too.
	return &pulls{nc: nc, cons: cons, batch: max(batch, 16), bytes: bytes, ctx: ctx, stop: stop}
}

// Next returns the next delivery: from the request being read, or from a
// new one when that one ended (its expiry, its batch or its bytes). It
// returns ErrMsgIteratorClosed once stopped. As jetstream's iterator did,
// it waits out a lost connection and asks again once it is back, and
// returns the failures that a new request would not mend, after which it
// is stopped: the server stopped sending heartbeats on a connection that
// stayed up (jetstream.ErrNoHeartbeat: a restarted server, a lost durable),
// the consumer or its stream is gone, or the request was refused. Other
// failures (a server shutting down, a consumer changing leader) are
// returned without stopping: the next call asks again.
func (p *pulls) Next(...jetstream.NextOpt) (jetstream.Msg, error) {
	for {
		if p.cur == nil {
			if err := p.connected(); err != nil {
				return nil, err
			}
			ctx, cancel := context.WithTimeout(p.ctx, pullExpiry)
			p.reconnects = p.nc.Stats().Reconnects
			b, err := p.cons.Fetch(p.batch, jetstream.FetchMaxBytes(p.bytes),
				jetstream.FetchHeartbeat(pullHeartbeat), jetstream.FetchContext(ctx))
			if err != nil {
				cancel()
				return nil, err
			}
			p.cur, p.cancel = b, cancel
		}
		if m, ok := <-p.cur.Messages(); ok {
			return m, nil
		}
		err := p.cur.Error()
		p.cancel()
		p.cur = nil
		switch {
		case p.ctx.Err() != nil:
			return nil, jetstream.ErrMsgIteratorClosed
		case err == nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrBatchCompleted):
			// The request ended (the server's answer to its expiry may
			// come after the context's): ask again.
		case p.nc.Stats().Reconnects != p.reconnects || !p.nc.IsConnected():
			// The connection was lost meanwhile, and the request with
			// it: ask again once it is back.
		case errors.Is(err, jetstream.ErrNoHeartbeat), errors.Is(err, jetstream.ErrConsumerDeleted),
			errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrBadRequest),
			errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrConnectionClosed):
			p.stop()
			return nil, err
		default:
			return nil, err
		}
	}
}

// connected waits until the connection is up; ErrMsgIteratorClosed if the
// iterator is stopped meanwhile, the connection's error if it is closed.
func (p *pulls) connected() error {
	for !p.nc.IsConnected() {
		if p.nc.IsClosed() {
			p.stop()
			return nats.ErrConnectionClosed
		}
		select {
		case <-p.ctx.Done():
			return jetstream.ErrMsgIteratorClosed
		case <-time.After(50 * time.Millisecond):
		}
	}
	if p.ctx.Err() != nil {
		return jetstream.ErrMsgIteratorClosed
	}
	return nil
}

// Stop ends the request being read and every later one.
func (p *pulls) Stop() { p.stop() }

// Drain is Stop: what was delivered and not taken is delivered again.
func (p *pulls) Drain() { p.stop() }
