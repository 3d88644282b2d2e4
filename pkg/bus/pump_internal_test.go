package bus

import (
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// numbered is a delivery with its consumer sequence number, as the server numbers them.
type numbered struct {
	jetstream.Msg
	seq uint64
}

func (m numbered) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Consumer: m.seq, Stream: m.seq}}, nil
}

// iterFake hands out its messages, then says the iterator is closed.
type iterFake struct {
	msgs    []jetstream.Msg
	stopped bool
}

func (d *iterFake) Next(...jetstream.NextOpt) (jetstream.Msg, error) {
	if d.stopped || len(d.msgs) == 0 {
		return nil, jetstream.ErrMsgIteratorClosed
	}
	m := d.msgs[0]
	d.msgs = d.msgs[1:]
	return m, nil
}
func (d *iterFake) Stop()  { d.stopped = true }
func (d *iterFake) Drain() { d.stopped = true }

// TestPumpStopsAtAMissingDelivery: a delivery the client never got (it fell behind, and
// dropped it) shows as a skipped number. The pump hands over nothing after it and stops the
// iterator, so the consumer rewinds to its ack floor instead of acknowledging past it
// (AckAll would acknowledge the lost one too).
func TestPumpStopsAtAMissingDelivery(t *testing.T) {
	for _, tc := range []struct {
		name      string
		delivered uint64
		seqs      []uint64
		handed    int
		wantStop  bool
	}{
		{"consecutive", 0, []uint64{1, 2, 3}, 3, false},
		{"a gap", 0, []uint64{1, 2, 4, 5}, 2, true},
		{"a gap at the first, after a reopen that had delivered 7", 7, []uint64{9, 10}, 0, true},
		{"on from a reopen", 7, []uint64{8, 9}, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &iterFake{}
			for _, s := range tc.seqs {
				d.msgs = append(d.msgs, numbered{seq: s})
			}
			out := make(chan jetstream.Msg, len(tc.seqs))
			pump(d, out, false, tc.delivered, slog.New(slog.DiscardHandler))
			var got []uint64
			for m := range out {
				md, _ := m.Metadata()
				got = append(got, md.Sequence.Consumer)
			}
			if len(got) != tc.handed || d.stopped != tc.wantStop {
				t.Fatalf("deliveries %v after %d: handed over %v, stopped %v; want %d handed over, stopped %v",
					tc.seqs, tc.delivered, got, d.stopped, tc.handed, tc.wantStop)
			}
		})
	}
}

// counted counts the parses of its metadata, as the client parses the reply
// subject at every call.
type counted struct {
	numbered
	parses *int
}

func (m counted) Metadata() (*jetstream.MsgMetadata, error) {
	*m.parses++
	return m.numbered.Metadata()
}

// TestPumpParsesMetadataOnce: the consumer and its stage ask for a message's
// metadata several times; the message handed over answers from the one parse
// the pump made.
func TestPumpParsesMetadataOnce(t *testing.T) {
	parses := 0
	d := &iterFake{msgs: []jetstream.Msg{counted{numbered{seq: 1}, &parses}}}
	out := make(chan jetstream.Msg, 1)
	pump(d, out, false, 0, slog.New(slog.DiscardHandler))
	m := <-out
	for range 3 {
		if md, err := m.Metadata(); err != nil || md.Sequence.Stream != 1 {
			t.Fatalf("metadata %+v, %v; want stream sequence 1", md, err)
		}
		if deliveries(m) < 0 || sequence(m) != 1 {
			t.Fatalf("sequence %d, want 1", sequence(m))
		}
	}
	if parses != 1 {
		t.Errorf("the metadata was parsed %d times, want once", parses)
	}
}
