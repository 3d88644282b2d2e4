package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
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
	// The events' ids, each ended by a newline, hashed at once: one
	// allocation per frame rather than one per event.
	var ids []byte
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
		id := m.Header.Get(HeaderMsgID)
		if ids == nil {
			ids = make([]byte, 0, len(msgs)*(len(id)+1))
		}
		ids = append(append(ids, id...), '\n')
	}
	sum := sha256.Sum256(ids)
	out := nats.NewMsg(subject)
	out.Header.Set(HeaderFrame, frameVersion)
	out.Header.Set(HeaderMsgID, "frame:"+hex.EncodeToString(sum[:16]))
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
	fes, err := unframe(data)
	if err != nil {
		return nil, err
	}
	events := make([]Event, len(fes))
	for i, e := range fes {
		events[i] = Event{Header: headerMap(e.header), Data: e.data}
	}
	return events, nil
}

// frameEvent is an event of a frame as unframe reads it: its bytes, and its
// headers as a list of names and values in turn, in the frame's order.
type frameEvent struct {
	header []string
	data   []byte
}

// frameField is where unframe found an event's bytes (header -1) or one of
// its headers' name and value (ks:ke, vs:ve).
type frameField struct {
	event, ks, ke, vs, ve int
}

// unframeScratch holds the fields of a frame while unframe reads it; it is
// reused, as it does not outlive the call.
var unframeScratch = sync.Pool{New: func() any { return new([]frameField) }}

// maxScratchHint bounds the fields unframe makes room for at once.
const maxScratchHint = 1 << 12

// unframe reads the events of a frame's bytes. A stage reads every event of
// every frame it is handed, so the reading costs a few allocations per frame,
// none per event: the events' bytes are sub-slices of data, and their header
// names and values are cut from one string of all of them.
func unframe(data []byte) ([]frameEvent, error) {
	scratch := unframeScratch.Get().(*[]frameField)
	fields := (*scratch)[:0]
	if cap(fields) == 0 {
		// A field takes at least a few bytes: room for what a frame of
		// this size holds, so that reading it is one allocation at most,
		// up to a bound (4,096 fields, 160 KB) that a frame of the largest
		// payload a server allows does not turn into one huge allocation.
		fields = make([]frameField, 0, min(len(data)/16, maxScratchHint))
	}
	defer func() {
		if cap(fields) <= 1<<16 {
			*scratch = fields[:0]
			unframeScratch.Put(scratch)
		}
	}()
	events, pairs, size := 0, 0, 0
	for p := 0; p < len(data); events++ {
		start, end, err := fieldAt(data, p, 1)
		if err != nil {
			return nil, fmt.Errorf("frame event %d: %w", events, err)
		}
		p = end
		for q := start; q < end; {
			num, typ, n := protowire.ConsumeTag(data[q:end])
			if n < 0 || typ != protowire.BytesType {
				return nil, fmt.Errorf("frame event %d: malformed field", events)
			}
			l, m := protowire.ConsumeVarint(data[q+n : end])
			if m < 0 || l > uint64(end-q-n-m) {
				return nil, fmt.Errorf("frame event %d: field %d is cut short", events, num)
			}
			vs, ve := q+n+m, q+n+m+int(l)
			q = ve
			switch num {
			case 1:
				ks, ke, err := fieldAt(data[:ve], vs, 1)
				if err != nil {
					return nil, fmt.Errorf("frame event %d: header name: %w", events, err)
				}
				as, ae, err := fieldAt(data[:ve], ke, 2)
				if err != nil {
					return nil, fmt.Errorf("frame event %d: header %s: %w", events, data[ks:ke], err)
				}
				fields = append(fields, frameField{events, ks, ke, as, ae})
				pairs++
				size += ke - ks + ae - as
			case 2:
				// The last bytes field wins, as in protobuf.
				fields = append(fields, frameField{event: events, ks: -1, vs: vs, ve: ve})
			}
		}
	}
	if events == 0 {
		return nil, errors.New("frame holds no events")
	}
	var b strings.Builder
	b.Grow(size)
	for _, f := range fields {
		if f.ks >= 0 {
			b.Write(data[f.ks:f.ke])
			b.Write(data[f.vs:f.ve])
		}
	}
	text := b.String()
	out := make([]frameEvent, events)
	header := make([]string, 0, 2*pairs)
	at, from := 0, 0
	for i, f := range fields {
		if f.ks < 0 {
			out[f.event].data = data[f.vs:f.ve:f.ve]
		} else {
			k, v := at+f.ke-f.ks, at+f.ke-f.ks+f.ve-f.vs
			header = append(header, text[at:k], text[k:v])
			at = v
		}
		if i == len(fields)-1 || fields[i+1].event != f.event {
			out[f.event].header = header[from:len(header):len(header)]
			from = len(header)
		}
	}
	return out, nil
}

// headerMap is the header of an event whose names and values are header.
func headerMap(header []string) nats.Header {
	h := make(nats.Header, len(header)/2)
	for i := 0; i+1 < len(header); i += 2 {
		k := header[i]
		if prev, ok := h[k]; ok {
			h[k] = append(prev, header[i+1])
			continue
		}
		h[k] = header[i+1 : i+2 : i+2]
	}
	return h
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
//
// Its headers stay a list of names and values until Headers is called: the
// stages read the few they need through HeaderValue and SpanContextOf, so
// that a map per event is made only for the rare event whose headers are
// copied (a dead letter, a held message).
type frameItem struct {
	frame  jetstream.Msg
	md     *jetstream.MsgMetadata
	index  int
	count  int
	pairs  []string
	data   []byte
	once   sync.Once
	header nats.Header
}

var _ jetstream.Msg = (*frameItem)(nil)

// items unframes m into the messages a stage is handed: m itself when it is
// not a frame, or cannot be read as one (the stage then refuses it as
// malformed, and it is dead-lettered as it is).
func items(m jetstream.Msg) []jetstream.Msg {
	h := m.Headers()
	if !IsFrame(h) || h.Get(HeaderFrame) != frameVersion {
		return []jetstream.Msg{m}
	}
	events, err := unframe(m.Data())
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
		all[i] = frameItem{frame: m, md: md, index: i, count: len(events), pairs: e.header, data: e.data}
		out[i] = &all[i]
	}
	return out
}

// HeaderValue is m.Headers().Get(key), the first value of m's header key,
// read without making the header map of an event of a frame.
func HeaderValue(m jetstream.Msg, key string) string {
	f, ok := m.(*frameItem)
	if !ok {
		return m.Headers().Get(key)
	}
	for i := 0; i+1 < len(f.pairs); i += 2 {
		if f.pairs[i] == key {
			return f.pairs[i+1]
		}
	}
	return ""
}

func (f *frameItem) last() bool { return f.index == f.count-1 }

// Metadata is the frame's.
func (f *frameItem) Metadata() (*jetstream.MsgMetadata, error) { return f.md, nil }

// Data is the event's bytes.
func (f *frameItem) Data() []byte { return f.data }

// Headers are the event's own headers, made into a map on the first call.
func (f *frameItem) Headers() nats.Header {
	f.once.Do(func() { f.header = headerMap(f.pairs) })
	return f.header
}

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
