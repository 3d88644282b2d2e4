package bus

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
)

// headerNames are the names the random events' headers are drawn from: the
// ones stages read, the trace context in the spellings publishers use, and
// another.
var headerNames = []string{HeaderMsgID, "traceparent", "Traceparent", "TRACEPARENT", "tracestate", "TraceState",
	"Syncline-Supersedes", "Syncline-Outcome", "x"}

// randomEvent is a message on subject with random headers: some names
// repeated, some traceparents as Syncline writes them, some not.
func randomEvent(rng *rand.Rand, subject string) *nats.Msg {
	m := nats.NewMsg(subject)
	for range rng.IntN(6) {
		name := headerNames[rng.IntN(len(headerNames))]
		value := strconv.Itoa(rng.IntN(1000))
		if strings.EqualFold(name, "traceparent") {
			var tid [16]byte
			var sid [8]byte
			for i := range tid {
				tid[i] = byte(rng.IntN(256))
			}
			for i := range sid {
				sid[i] = byte(rng.IntN(256))
			}
			value = formatTraceparent(trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(rng.IntN(2))}))
			if rng.IntN(5) == 0 {
				value = value[:rng.IntN(len(value))]
			}
		}
		m.Header.Add(name, value)
	}
	m.Data = []byte(strconv.Itoa(rng.IntN(1 << 20)))
	return m
}

// The events of a frame are read through HeaderValue and SpanContextOf
// without their header maps; what those read must be what the maps say, for
// any headers: the first value of a name, and the span context the
// propagator reads.
func TestFrameItemsReadHeadersAsTheirMapsDo(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	for round := range 500 {
		msgs := make([]*nats.Msg, 2+rng.IntN(20))
		for i := range msgs {
			msgs[i] = randomEvent(rng, "flow.t.f.0")
		}
		framed := Frame(msgs, 0)
		if len(framed) != 1 {
			t.Fatalf("seed %d round %d: %d events made %d frames, want 1", seed, round, len(msgs), len(framed))
		}
		events, err := unframe(framed[0].Data)
		if err != nil {
			t.Fatalf("seed %d round %d: %v", seed, round, err)
		}
		if len(events) != len(msgs) {
			t.Fatalf("seed %d round %d: %d events read, %d framed", seed, round, len(events), len(msgs))
		}
		for i, e := range events {
			want := msgs[i]
			item := &frameItem{pairs: e.header, data: e.data}
			for _, name := range headerNames {
				if got, w := HeaderValue(item, name), want.Header.Get(name); got != w {
					t.Fatalf("seed %d round %d event %d: header %s reads %q, the map says %q", seed, round, i, name, got, w)
				}
			}
			if got, w := SpanContextOf(item), RemoteSpanContext(want.Header); !got.Equal(w) || got.IsRemote() != w.IsRemote() {
				t.Fatalf("seed %d round %d event %d (headers %v): span context %v, from the map %v", seed, round, i, want.Header, got, w)
			}
			if got, w := TraceIDOf(item), TraceID(want.Header); got != w {
				t.Fatalf("seed %d round %d event %d: trace id %q, from the map %q", seed, round, i, got, w)
			}
			if got := item.Headers(); !reflect.DeepEqual(got, want.Header) {
				t.Fatalf("seed %d round %d event %d: headers %v, want %v", seed, round, i, got, want.Header)
			}
			if string(item.Data()) != string(want.Data) {
				t.Fatalf("seed %d round %d event %d: data %q, want %q", seed, round, i, item.Data(), want.Data)
			}
		}
	}
}

// A stage reads every event of a frame; reading one costs allocations per
// frame, not per event, as long as the stage reads headers through
// HeaderValue and SpanContextOf.
func TestReadingAFrameAllocatesPerFrameNotPerEvent(t *testing.T) {
	frame := func(n int) []byte {
		msgs := make([]*nats.Msg, n)
		for i := range msgs {
			m := nats.NewMsg("push.t.f.0")
			m.Header.Set(HeaderMsgID, "event-"+strconv.Itoa(i))
			m.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			m.Header.Set("Syncline-Supersedes", "event-"+strconv.Itoa(i-1))
			m.Data = []byte(strings.Repeat("d", 100))
			msgs[i] = m
		}
		return Frame(msgs, 0)[0].Data
	}
	read := func(data []byte) func() {
		return func() {
			events, err := unframe(data)
			if err != nil {
				t.Fatal(err)
			}
			all := make([]frameItem, len(events))
			for i, e := range events {
				all[i] = frameItem{index: i, count: len(events), pairs: e.header, data: e.data}
				if HeaderValue(&all[i], HeaderMsgID) == "" || !SpanContextOf(&all[i]).IsValid() {
					t.Fatalf("event %d: its id or trace context is not read", i)
				}
			}
		}
	}
	small, large := testing.AllocsPerRun(50, read(frame(10))), testing.AllocsPerRun(50, read(frame(400)))
	if large != small {
		t.Fatalf("reading a frame of 10 events takes %.0f allocations, one of 400 events %.0f: reading costs allocations per event", small, large)
	}
}

// A frame's Nats-Msg-Id is "frame:" and the first 16 bytes, in hex, of the
// SHA-256 of its events' ids, each ended by a newline: what every version
// has written, so that a frame published again by another version of the
// stage is still stored once.
func TestFrameIDIsTheHashOfItsEventsIDs(t *testing.T) {
	var msgs []*nats.Msg
	var ids []byte
	for i := range 5 {
		m := nats.NewMsg("audit.t.f.0")
		m.Header.Set(HeaderMsgID, "event-"+strconv.Itoa(i))
		m.Data = []byte("x")
		msgs = append(msgs, m)
		ids = append(ids, "event-"+strconv.Itoa(i)+"\n"...)
	}
	sum := sha256.Sum256(ids)
	if got, want := Frame(msgs, 0)[0].Header.Get(HeaderMsgID), "frame:"+hex.EncodeToString(sum[:16]); got != want {
		t.Fatalf("frame id %s, want %s", got, want)
	}
}
