package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protowire"
)

// Frames carry many events of one subject in one message between stages (the
// flow, push and audit streams), so that a hop costs one publish, one stored
// message and one acknowledgement per batch instead of per event. They are
// internal: publishers outside Syncline publish one envelope per message to
// ingest, as documented, and nothing else may publish frames.
//
// A frame's bytes are protobuf, version 1:
//
//	message Frame  { repeated Event events = 1; }
//	message Event  { repeated Header headers = 1; bytes data = 2; }
//	message Header { string key = 1; string value = 2; }
//
// Each event keeps its own headers (its Nats-Msg-Id, its trace context) and
// bytes exactly as a message of its own would; the frame's headers are only
// HeaderFrame (the version) and a Nats-Msg-Id made from its events' ids, so a
// frame published again with the same events is stored once.
//
// A consumer hands a frame's events to its stage one by one, as if each had
// come alone (see Consumer), so stages neither know nor care whether their
// input was framed. A stage's outputs are framed by the Publisher.
const HeaderFrame = "Syncline-Frame"

// frameVersion is the only frame version there is so far. A consumer that
// meets another version hands the message over as it is, and the stage
// dead-letters it as malformed.
const frameVersion = "1"

// HeaderDeadIndex is a dead letter's place in its frame (0 first), when the
// event came in one: the dead letter's stream and sequence name the frame.
const HeaderDeadIndex = "Syncline-Dead-Index"

// frameOverhead is room left in a frame for its own headers.
const frameOverhead = 256

// framedStream reports whether stream carries frames: the streams between
// stages. Only there is a message read as a frame; elsewhere (ingest, where
// anyone with a token publishes) a message that claims to be one is handed
// over as it is, and its stage refuses it as malformed.
func framedStream(stream string) bool {
	return stream == StreamFlow || stream == StreamPush || stream == StreamAudit
}

// framed reports whether messages to subject travel in frames: the flow,
// push and audit streams'. A stage that crashed after publishing hands its
// batch over again one event at a time (crashes.go), so what it publishes
// again goes out in other frames, which the stream stores anew; the next
// consumer finishes those events at once, as it remembers the events it
// finished lately, across its own restarts too (see recentIDs).
func framed(subject string) bool {
	return strings.HasPrefix(subject, "flow.") || strings.HasPrefix(subject, "push.") || strings.HasPrefix(subject, "audit.")
}

// Frame puts the messages of msgs that share a framed subject into frames of
// at most limit bytes (0: no limit), in their order; every other message, and
// a frame's worth of one, stays as it is. The result holds every message of
// msgs exactly once, each subject's in order.
func Frame(msgs []*nats.Msg, limit int) []*nats.Msg {
	if len(msgs) < 2 {
		return msgs
	}
	var order []string
	groups := map[string][]*nats.Msg{}
	count := 0
	for _, m := range msgs {
		if !framed(m.Subject) {
			continue
		}
		if _, ok := groups[m.Subject]; !ok {
			order = append(order, m.Subject)
		}
		groups[m.Subject] = append(groups[m.Subject], m)
		count++
	}
	if len(order) == count {
		// Every framed subject has one message: nothing to gather.
		return msgs
	}
	out := make([]*nats.Msg, 0, len(order)+len(msgs)-count)
	for _, m := range msgs {
		if !framed(m.Subject) {
			out = append(out, m)
		}
	}
	for _, subject := range order {
		group := groups[subject]
		for len(group) > 0 {
			n, size := 0, frameOverhead
			for n < len(group) {
				s := eventSize(group[n])
				if limit > 0 && n > 0 && size+s > limit {
					break
				}
				size += s
				n++
			}
			if n == 1 {
				out = append(out, group[0])
			} else {
				out = append(out, encodeFrame(subject, group[:n], size))
			}
			group = group[n:]
		}
	}
	return out
}

// eventSize is the bytes m takes in a frame.
func eventSize(m *nats.Msg) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(eventLen(m))
}

// eventLen is the length of m's Event message.
func eventLen(m *nats.Msg) int {
	n := protowire.SizeTag(2) + protowire.SizeBytes(len(m.Data))
	for k, vs := range m.Header {
		for _, v := range vs {
			n += protowire.SizeTag(1) + protowire.SizeBytes(headerLen(k, v))
		}
	}
	return n
}

// headerLen is the length of a Header message.
func headerLen(k, v string) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(len(k)) + protowire.SizeTag(2) + protowire.SizeBytes(len(v))
}

// encodeFrame makes the frame of msgs on subject; size is at least its bytes.
func encodeFrame(subject string, msgs []*nats.Msg, size int) *nats.Msg {
	data := make([]byte, 0, size)
	h := sha256.New()
	for _, m := range msgs {
		data = protowire.AppendTag(data, 1, protowire.BytesType)
		data = protowire.AppendVarint(data, uint64(eventLen(m)))
		for k, vs := range m.Header {
			for _, v := range vs {
				data = protowire.AppendTag(data, 1, protowire.BytesType)
				data = protowire.AppendVarint(data, uint64(headerLen(k, v)))
				data = protowire.AppendTag(data, 1, protowire.BytesType)
				data = protowire.AppendString(data, k)
				data = protowire.AppendTag(data, 2, protowire.BytesType)
				data = protowire.AppendString(data, v)
			}
		}
		data = protowire.AppendTag(data, 2, protowire.BytesType)
		data = protowire.AppendBytes(data, m.Data)
		h.Write([]byte(m.Header.Get(HeaderMsgID)))
		h.Write([]byte{'\n'})
	}
	out := nats.NewMsg(subject)
	out.Header.Set(HeaderFrame, frameVersion)
	out.Header.Set(HeaderMsgID, "frame:"+hex.EncodeToString(h.Sum(nil)[:16]))
	out.Data = data
	return out
}

// Event is one event of a frame: its own headers and bytes.
type Event struct {
	Header nats.Header
	Data   []byte
}

// IsFrame reports whether a message with headers h is a frame.
func IsFrame(h nats.Header) bool { return h.Get(HeaderFrame) != "" }

// Unframe returns the events of a frame with headers h and bytes data, or of
// a message that is not a frame, the message as its only event. Events'
// bytes share data's memory; their header names and values share one string
// made of them all.
func Unframe(h nats.Header, data []byte) ([]Event, error) {
	if !IsFrame(h) {
		return []Event{{Header: h, Data: data}}, nil
	}
	if v := h.Get(HeaderFrame); v != frameVersion {
		return nil, fmt.Errorf("frame version %q is not one this version of Syncline reads (%s)", v, frameVersion)
	}
	// The first pass finds every event's bytes and headers; the headers'
	// names and values are then cut from one string of all of them.
	type header struct{ event, ks, ke, vs, ve int }
	var events []Event
	var headers []header
	size := 0
	for p := 0; p < len(data); {
		start, end, err := fieldAt(data, p, 1)
		if err != nil {
			return nil, fmt.Errorf("frame event %d: %w", len(events), err)
		}
		p = end
		var e Event
		for q := start; q < end; {
			num, typ, n := protowire.ConsumeTag(data[q:end])
			if n < 0 || typ != protowire.BytesType {
				return nil, fmt.Errorf("frame event %d: malformed field", len(events))
			}
			l, m := protowire.ConsumeVarint(data[q+n : end])
			if m < 0 || l > uint64(end-q-n-m) {
				return nil, fmt.Errorf("frame event %d: field %d is cut short", len(events), num)
			}
			vs, ve := q+n+m, q+n+m+int(l)
			q = ve
			switch num {
			case 1:
				ks, ke, err := fieldAt(data[:ve], vs, 1)
				if err != nil {
					return nil, fmt.Errorf("frame event %d: header name: %w", len(events), err)
				}
				as, ae, err := fieldAt(data[:ve], ke, 2)
				if err != nil {
					return nil, fmt.Errorf("frame event %d: header %s: %w", len(events), data[ks:ke], err)
				}
				headers = append(headers, header{len(events), ks, ke, as, ae})
				size += ke - ks + ae - as
			case 2:
				e.Data = data[vs:ve:ve]
			}
		}
		events = append(events, e)
	}
	if len(events) == 0 {
		return nil, errors.New("frame holds no events")
	}
	buf := make([]byte, 0, size)
	for _, h := range headers {
		buf = append(append(buf, data[h.ks:h.ke]...), data[h.vs:h.ve]...)
	}
	text := string(buf)
	values := make([]string, len(headers))
	at := 0
	for i, h := range headers {
		e := &events[h.event]
		if e.Header == nil {
			e.Header = make(nats.Header, 4)
		}
		k := text[at : at+h.ke-h.ks]
		at += h.ke - h.ks
		values[i] = text[at : at+h.ve-h.vs]
		at += h.ve - h.vs
		if prev, ok := e.Header[k]; ok {
			e.Header[k] = append(prev, values[i])
			continue
		}
		e.Header[k] = values[i : i+1 : i+1]
	}
	for i := range events {
		if events[i].Header == nil {
			events[i].Header = nats.Header{}
		}
	}
	return events, nil
}

// fieldAt reads the length-delimited field numbered num at data[p:] and
// returns where its value starts and ends.
func fieldAt(data []byte, p int, num protowire.Number) (start, end int, err error) {
	n2, typ, n := protowire.ConsumeTag(data[p:])
	if n < 0 || n2 != num || typ != protowire.BytesType {
		return 0, 0, fmt.Errorf("expected field %d", num)
	}
	l, m := protowire.ConsumeVarint(data[p+n:])
	if m < 0 || l > uint64(len(data)-p-n-m) {
		return 0, 0, fmt.Errorf("field %d is cut short", num)
	}
	start = p + n + m
	return start, start + int(l), nil
}

// frameItem is one event of a frame, handed to a stage as a message of its
// own: its headers and bytes, the frame's subject, and the frame's metadata
// (stream, sequence, deliveries). It is finished when the consumer says so;
// the frame is acknowledged when all its events are.
type frameItem struct {
	frame  jetstream.Msg
	md     *jetstream.MsgMetadata
	index  int
	count  int
	header nats.Header
	data   []byte
}

var _ jetstream.Msg = (*frameItem)(nil)

// items unframes m into the messages a stage is handed: m itself when it is
// not a frame, or cannot be read as one (the stage then refuses it as
// malformed, and it is dead-lettered as it is).
func items(m jetstream.Msg) []jetstream.Msg {
	if !IsFrame(m.Headers()) {
		return []jetstream.Msg{m}
	}
	events, err := Unframe(m.Headers(), m.Data())
	if err != nil {
		return []jetstream.Msg{m}
	}
	md, err := m.Metadata()
	if err != nil {
		return []jetstream.Msg{m}
	}
	out := make([]jetstream.Msg, len(events))
	all := make([]frameItem, len(events))
	for i, e := range events {
		all[i] = frameItem{frame: m, md: md, index: i, count: len(events), header: e.Header, data: e.Data}
		out[i] = &all[i]
	}
	return out
}

func (f *frameItem) last() bool { return f.index == f.count-1 }

// Metadata is the frame's.
func (f *frameItem) Metadata() (*jetstream.MsgMetadata, error) { return f.md, nil }

// Data is the event's bytes.
func (f *frameItem) Data() []byte { return f.data }

// Headers are the event's own headers.
func (f *frameItem) Headers() nats.Header { return f.header }

// Subject is the frame's subject, which all its events share.
func (f *frameItem) Subject() string { return f.frame.Subject() }

// Reply is empty: the frame answers for its events.
func (f *frameItem) Reply() string { return "" }

// Ack and the other acknowledgements fail: see frameItem.
func (f *frameItem) Ack() error                       { return errItemNoAck }
func (f *frameItem) DoubleAck(context.Context) error  { return errItemNoAck }
func (f *frameItem) Nak() error                       { return errItemNoAck }
func (f *frameItem) NakWithDelay(time.Duration) error { return errItemNoAck }
func (f *frameItem) InProgress() error                { return errItemNoAck }
func (f *frameItem) Term() error                      { return errItemNoAck }
func (f *frameItem) TermWithReason(string) error      { return errItemNoAck }

var errItemNoAck = errors.New("an event of a frame is acknowledged with its frame, by the consumer")

// position is a message's place in its stream: its sequence and, for an event
// of a frame, its index in the frame (0 otherwise).
type position struct {
	seq   uint64
	index int
}

func positionOf(m jetstream.Msg) position {
	if f, ok := m.(*frameItem); ok {
		return position{f.md.Sequence.Stream, f.index}
	}
	return position{seq: sequence(m)}
}

// deadLetters are the dead letters of a raw stream message: one per event
// when it is a frame, so each can be replayed on its own.
func deadLetters(subject string, h nats.Header, data []byte, stream string, seq uint64, delivered int, stage, code, reason string) []*nats.Msg {
	if !IsFrame(h) || !framedStream(stream) {
		return []*nats.Msg{deadLetterMsg(subject, h, data, stream, seq, delivered, stage, code, reason)}
	}
	events, err := Unframe(h, data)
	if err != nil {
		return []*nats.Msg{deadLetterMsg(subject, h, data, stream, seq, delivered, stage, code, reason+"; the frame cannot be read: "+err.Error())}
	}
	out := make([]*nats.Msg, len(events))
	for i, e := range events {
		out[i] = deadLetterMsg(subject, e.Header, e.Data, stream, seq, delivered, stage, code,
			fmt.Sprintf("%s (one of the %d events of its frame)", reason, len(events)))
		markIndex(out[i], i)
	}
	return out
}

// markIndex makes dead letter m the one of the event at index of its frame.
func markIndex(m *nats.Msg, index int) {
	m.Header.Set(HeaderMsgID, m.Header.Get(HeaderMsgID)+":"+strconv.Itoa(index))
	m.Header.Set(HeaderDeadIndex, strconv.Itoa(index))
}
