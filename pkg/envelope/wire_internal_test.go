package envelope

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
)

var wireSeed = flag.Uint64("wire.seed", 0, "seed of TestWireAgreesWithProto and TestStagedDecodingAgrees (0: a new one, logged)")

// TestWireAgreesWithProto encodes random envelopes with Encode and decodes
// them with proto.Unmarshal, and the other way round with proto.Marshal and
// Unmarshal: both must give back the envelope they were given. Every one
// without unknown fields must take the generated code's path (plain), or
// the test would prove nothing about it.
func TestWireAgreesWithProto(t *testing.T) {
	r := wireRand(t, 0)
	for i := range 5000 {
		e, unknown := randomEnvelope(r)
		b, err := Encode(e)
		if err != nil {
			t.Fatalf("envelope %d: Encode: %v", i, err)
		}
		if plain := envelopeShape.plain(b); plain == unknown {
			t.Fatalf("envelope %d (%v): plain = %v, with unknown fields %v", i, e, plain, unknown)
		}
		back := &eventv1.Envelope{}
		if err := proto.Unmarshal(b, back); err != nil || !proto.Equal(e, back) {
			t.Fatalf("envelope %d: Encode, then proto.Unmarshal = %v, %v; want %v", i, back, err, e)
		}
		b, err = proto.Marshal(e)
		if err != nil {
			t.Fatalf("envelope %d: proto.Marshal: %v", i, err)
		}
		if back, err = Unmarshal(b); err != nil || !proto.Equal(e, back) {
			t.Fatalf("envelope %d: proto.Marshal, then Unmarshal = %v, %v; want %v", i, back, err, e)
		}
	}
}

// TestStagedDecodingAgrees: what Encode writes, UnmarshalStaged and
// DecodeStaged read exactly as Unmarshal and Decode do, envelopes from a
// newer build (unknown fields) included; and bytes that were never an
// envelope, or were cut or changed on the way, make them fail or agree,
// never panic.
func TestStagedDecodingAgrees(t *testing.T) {
	r := wireRand(t, 1)
	for i := range 5000 {
		e := randomWritten(r)
		b, err := Encode(e)
		if err != nil {
			t.Fatalf("envelope %d: Encode: %v", i, err)
		}
		if got, err := UnmarshalStaged(b); err != nil || !proto.Equal(got, e) {
			t.Fatalf("envelope %d: UnmarshalStaged = %v, %v; want %v", i, got, err, e)
		}
		got, err := DecodeStaged(b)
		want, werr := Decode(b)
		if fmt.Sprint(err) != fmt.Sprint(werr) || !proto.Equal(got, want) {
			t.Fatalf("envelope %d: DecodeStaged = %v, %v; Decode = %v, %v", i, got, err, want, werr)
		}
		// Bytes changed or cut: the staged reading agrees wherever the
		// wire check would have let the generated code read them.
		c := []byte(string(b))
		switch r.IntN(3) {
		case 0:
			c = c[:r.IntN(len(c)+1)]
		default:
			for range 1 + r.IntN(4) {
				if len(c) > 0 {
					c[r.IntN(len(c))] = byte(r.Uint32())
				}
			}
		}
		got, err = UnmarshalStaged(c)
		want, werr = Unmarshal(c)
		if envelopeShape.plain(c) && (fmt.Sprint(err) != fmt.Sprint(werr) || !proto.Equal(got, want)) {
			t.Fatalf("envelope %d changed to %x: UnmarshalStaged = %v, %v; Unmarshal = %v, %v", i, c, got, err, want, werr)
		}
		if err == nil && !stringsUTF8(got) {
			t.Fatalf("envelope %d changed to %x: UnmarshalStaged read a string that is not UTF-8: %v", i, c, got)
		}
	}
}

// randomWritten is a random envelope as a protobuf library may write it:
// none writes a timestamp with fields it lacks.
func randomWritten(r *rand.Rand) *eventv1.Envelope {
	for {
		if e, _ := randomEnvelope(r); !hasUnknown(e.OccurredAt) && !hasUnknown(e.PublishedAt) {
			return e
		}
	}
}

// readers are the decoders that read with the generated code.
var readers = []struct {
	name string
	f    func([]byte) (*eventv1.Envelope, error)
}{{"Unmarshal", Unmarshal}, {"UnmarshalStaged", UnmarshalStaged}}

// TestDecodedEnvelopesOwnTheirBytes: an envelope read by Unmarshal or
// UnmarshalStaged keeps nothing of the bytes it was read from (a frame of
// hundreds of events, which a string of one of them would keep alive, or a
// buffer its caller reuses), and a payload appended to leaves the strings
// read with it as they were.
func TestDecodedEnvelopesOwnTheirBytes(t *testing.T) {
	r := wireRand(t, 2)
	for i := range 2000 {
		e := randomWritten(r)
		for _, read := range readers {
			b, err := Encode(e)
			if err != nil {
				t.Fatalf("envelope %d: Encode: %v", i, err)
			}
			got, err := read.f(b)
			if err != nil {
				t.Fatalf("envelope %d: %s: %v", i, read.name, err)
			}
			for j := range b {
				b[j] = byte(r.Uint32())
			}
			if !proto.Equal(got, e) {
				t.Fatalf("envelope %d: %s's envelope changed with the bytes it was read from: %v; want %v", i, read.name, got, e)
			}
			payload := got.Payload
			got.Payload = append(got.Payload, "appended past the payload, over whatever follows it"...)
			got.Payload = payload
			if !proto.Equal(got, e) {
				t.Fatalf("envelope %d: %s's envelope changed with an append to its payload: %v; want %v", i, read.name, got, e)
			}
		}
	}
}

// TestDecodingAllocatesPerEnvelopeNotPerString: the strings of an envelope
// read by the generated code share one allocation, so a full envelope costs
// the envelope, its copy of the bytes, its two timestamps and its Result.
func TestDecodingAllocatesPerEnvelopeNotPerString(t *testing.T) {
	e := &eventv1.Envelope{
		SchemaVersion: 1, EventId: "01890a5d-ac96-774b-bcce-b302099a8057", Tenant: "acme", Integrator: "shop-sync",
		SourceEndpoint: "shop", Flow: "orders-to-erp", Entity: "order", Operation: eventv1.Operation_OPERATION_UPSERT,
		SourceKey: "SO-1001", SourceVersion: 3, Payload: []byte(`{"number":"SO-1001","total":19.95}`),
		OccurredAt: timestamppb.Now(), PublishedAt: timestamppb.Now(), FlowGeneration: 2,
		Result: &eventv1.Result{Stage: "dedup", Action: eventv1.Action_ACTION_CREATED, TargetId: "42", Reason: "new key", Code: "none", ContentHash: strings.Repeat("ab", 32)},
	}
	b, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, read := range readers {
		if got, err := read.f(b); err != nil || !proto.Equal(got, e) {
			t.Fatalf("%s = %v, %v; want %v", read.name, got, err, e)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = read.f(b) }); n > 5 {
			t.Errorf("%s: %v allocations for an envelope of 12 strings, a payload, two timestamps and a Result; want at most 5", read.name, n)
		}
	}
}

// wireRand is the random source of a test, stream of its own, seeded by
// -wire.seed or by a new seed it logs.
func wireRand(t *testing.T, stream uint64) *rand.Rand {
	seed := *wireSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -wire.seed=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, stream))
}

// randomEnvelope returns an envelope with every field at random, each also
// unset now and then: nil and empty payloads, maps and Results, timestamps
// out of range, enum values no build knows; and whether it was given unknown
// fields (as from a newer build), in the envelope, a timestamp or the Result.
func randomEnvelope(r *rand.Rand) (*eventv1.Envelope, bool) {
	s := func() string { return randomString(r) }
	e := &eventv1.Envelope{
		SchemaVersion:  r.Uint32N(3),
		EventId:        s(),
		Tenant:         s(),
		Integrator:     s(),
		SourceEndpoint: s(),
		Flow:           s(),
		Entity:         s(),
		Operation:      eventv1.Operation(r.Int32N(6) - 2),
		SourceKey:      s(),
		SourceVersion:  randomInt64(r),
		OccurredAt:     randomTimestamp(r),
		PublishedAt:    randomTimestamp(r),
		FlowGeneration: randomInt64(r),
	}
	if r.IntN(4) == 0 {
		e.SchemaVersion = r.Uint32()
	}
	switch r.IntN(4) {
	case 0:
	case 1:
		e.Payload = []byte{}
	case 2:
		e.Payload = []byte(`{"id":` + fmt.Sprint(r.Int()) + `,"name":"` + s() + `"}`)
	default:
		e.Payload = make([]byte, r.IntN(3000))
		for i := range e.Payload {
			e.Payload[i] = byte(r.Uint32())
		}
	}
	switch r.IntN(3) {
	case 0:
	case 1:
		e.Attributes = map[string]string{}
	default:
		e.Attributes = map[string]string{}
		for range 1 + r.IntN(5) {
			e.Attributes[s()] = s()
		}
	}
	switch r.IntN(3) {
	case 0:
	case 1:
		e.Result = &eventv1.Result{}
	default:
		e.Result = &eventv1.Result{Stage: s(), Action: eventv1.Action(r.Int32N(8) - 1), TargetId: s(), Reason: s(),
			Code: s(), Attempts: r.Uint32(), ContentHash: s(), DurationUs: randomInt64(r)}
	}
	if r.IntN(10) != 0 {
		return e, false
	}
	var unknown []byte
	unknown = protowire.AppendTag(unknown, protowire.Number(17+r.IntN(1000)), protowire.BytesType)
	unknown = protowire.AppendString(unknown, s())
	unknown = protowire.AppendTag(unknown, 4242, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, r.Uint64())
	in := proto.Message(e)
	switch r.IntN(4) {
	case 1:
		e.OccurredAt = &timestamppb.Timestamp{Seconds: 1}
		in = e.OccurredAt
	case 2:
		e.PublishedAt = &timestamppb.Timestamp{}
		in = e.PublishedAt
	case 3:
		e.Result = &eventv1.Result{Stage: s()}
		in = e.Result
	}
	in.ProtoReflect().SetUnknown(unknown)
	return e, true
}

// randomString is valid UTF-8, of one to four bytes a rune, or empty.
func randomString(r *rand.Rand) string {
	runes := []rune{'a', 'Z', '0', '-', '.', ' ', 'é', 'ß', '€', '漢', '😀', 0, 0x7f, 0x10ffff}
	var b strings.Builder
	for range r.IntN(24) {
		b.WriteRune(runes[r.IntN(len(runes))])
	}
	return b.String()
}

func randomInt64(r *rand.Rand) int64 {
	switch r.IntN(3) {
	case 0:
		return 0
	case 1:
		return r.Int64N(1 << 20)
	}
	return int64(r.Uint64())
}

func randomTimestamp(r *rand.Rand) *timestamppb.Timestamp {
	switch r.IntN(4) {
	case 0:
		return nil
	case 1:
		return &timestamppb.Timestamp{}
	case 2:
		return &timestamppb.Timestamp{Seconds: r.Int64N(4e9), Nanos: r.Int32N(1e9)}
	}
	return &timestamppb.Timestamp{Seconds: int64(r.Uint64()), Nanos: int32(r.Uint32())}
}

// TestStringsMustBeUTF8 sets each string of the envelope, found through its
// descriptor (map keys and values too), to bytes that are not UTF-8: Encode
// must refuse it with proto.Marshal's error, and Unmarshal the encoded
// bytes with proto.Unmarshal's.
func TestStringsMustBeUTF8(t *testing.T) {
	var fields int
	eachString(t, (&eventv1.Envelope{}).ProtoReflect().Descriptor(), nil, func(name string, set func(protoreflect.Message, string)) {
		fields++
		t.Run(name, func(t *testing.T) {
			good, bad := &eventv1.Envelope{SchemaVersion: 1, EventId: "e"}, &eventv1.Envelope{SchemaVersion: 1, EventId: "e"}
			set(good.ProtoReflect(), "ok")
			set(bad.ProtoReflect(), "bad \xff")
			if _, err := Encode(good); err != nil {
				t.Fatalf("Encode of UTF-8: %v", err)
			}
			_, want := proto.Marshal(bad)
			if _, err := Encode(bad); want == nil || err == nil || err.Error() != fmt.Sprintf("encoding envelope %s: %v", bad.EventId, want) {
				t.Fatalf("Encode = %v, want encoding envelope %s: %v", err, bad.EventId, want)
			}
			data := wireWithBadString(t, good)
			want = proto.Unmarshal(data, &eventv1.Envelope{})
			if e, err := Unmarshal(data); want == nil || err == nil || err.Error() != want.Error() || e != nil {
				t.Fatalf("Unmarshal = %v, %v; want proto.Unmarshal's error %v", e, err, want)
			}
			if _, err := Decode(data); err == nil || !strings.Contains(err.Error(), "decoding envelope") || !strings.Contains(err.Error(), want.Error()) {
				t.Fatalf("Decode = %v, want an error with %v", err, want)
			}
			// The staged decoders skip the wire check, not this.
			if e, err := UnmarshalStaged(data); err == nil || err.Error() != want.Error() || e != nil {
				t.Fatalf("UnmarshalStaged = %v, %v; want proto.Unmarshal's error %v", e, err, want)
			}
			if _, err := DecodeStaged(data); err == nil || !strings.Contains(err.Error(), "decoding envelope") || !strings.Contains(err.Error(), want.Error()) {
				t.Fatalf("DecodeStaged = %v, want an error with %v", err, want)
			}
		})
	})
	if fields < 14 {
		t.Fatalf("found %d string fields in the envelope, want at least the 14 it had", fields)
	}
}

// TestEncodeKeepsUnknownFields gives each message in the envelope, found
// through its descriptor, fields this build does not know (as a newer
// build writes them): Encode must keep them, as proto.Marshal does.
func TestEncodeKeepsUnknownFields(t *testing.T) {
	unknown := protowire.AppendString(protowire.AppendTag(nil, 999, protowire.BytesType), "from a newer build")
	var fields int
	eachMessage((&eventv1.Envelope{}).ProtoReflect().Descriptor(), nil, func(path []protoreflect.FieldDescriptor) {
		fields++
		names := []string{"envelope"}
		for _, fd := range path {
			names = append(names, string(fd.Name()))
		}
		t.Run(strings.Join(names, "."), func(t *testing.T) {
			e := &eventv1.Envelope{SchemaVersion: 1, EventId: "e"}
			m := proto.Message(e).ProtoReflect()
			for _, fd := range path {
				m = m.Mutable(fd).Message()
			}
			m.SetUnknown(unknown)
			b, err := Encode(e)
			back := &eventv1.Envelope{}
			if err != nil || proto.Unmarshal(b, back) != nil || !proto.Equal(back, e) {
				t.Fatalf("Encode(%v) = %q, %v; proto.Unmarshal reads it as %v", e, b, err, back)
			}
		})
	})
	if fields < 4 {
		t.Fatalf("found %d messages in the envelope, want at least the 4 it had", fields)
	}
}

// eachMessage calls f with the path to md and to every message field in it,
// maps left out (their entries have no unknown fields).
func eachMessage(md protoreflect.MessageDescriptor, path []protoreflect.FieldDescriptor, f func([]protoreflect.FieldDescriptor)) {
	f(path)
	fields := md.Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); fd.Kind() == protoreflect.MessageKind && !fd.IsMap() && !fd.IsList() {
			eachMessage(fd.Message(), append(append([]protoreflect.FieldDescriptor(nil), path...), fd), f)
		}
	}
}

// wireWithBadString encodes good, whose one string set is "ok", with that
// string's bytes replaced by "o\xff".
func wireWithBadString(t *testing.T, good *eventv1.Envelope) []byte {
	b, err := proto.Marshal(good)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), "\x02ok")
	if i < 0 {
		t.Fatalf("no \"ok\" in %q", b)
	}
	b[i+2] = 0xff
	return b
}

// eachString calls f with a name and a setter for every string field of md
// and of the messages and maps in it, the setter creating what is on the
// way.
func eachString(t *testing.T, md protoreflect.MessageDescriptor, path []protoreflect.FieldDescriptor, f func(string, func(protoreflect.Message, string))) {
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		here := append(append([]protoreflect.FieldDescriptor(nil), path...), fd)
		name := func(suffix string) string {
			var parts []string
			for _, p := range here {
				parts = append(parts, string(p.Name()))
			}
			return strings.Join(parts, ".") + suffix
		}
		at := func(m protoreflect.Message) protoreflect.Message {
			for _, p := range path {
				m = m.Mutable(p).Message()
			}
			return m
		}
		switch {
		case fd.IsList():
			t.Fatalf("%s is a list: teach eachString and validUTF8 lists", name(""))
		case fd.IsMap():
			if fd.MapKey().Kind() == protoreflect.StringKind {
				f(name(".key"), func(m protoreflect.Message, s string) {
					at(m).Mutable(fd).Map().Set(protoreflect.ValueOfString(s).MapKey(), fd.MapValue().Default())
				})
			}
			if fd.MapValue().Kind() == protoreflect.StringKind {
				f(name(".value"), func(m protoreflect.Message, s string) {
					at(m).Mutable(fd).Map().Set(protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfString(s))
				})
			} else if fd.MapValue().Kind() == protoreflect.MessageKind {
				t.Fatalf("%s holds messages: teach eachString and validUTF8 maps of messages", name(""))
			}
		case fd.Kind() == protoreflect.StringKind:
			f(name(""), func(m protoreflect.Message, s string) { at(m).Set(fd, protoreflect.ValueOfString(s)) })
		case fd.Kind() == protoreflect.MessageKind:
			eachString(t, fd.Message(), here, f)
		}
	}
}

// FuzzUnmarshal feeds arbitrary bytes to Unmarshal and to proto.Unmarshal:
// both must refuse them with the same error or read the same envelope, which
// Encode must write so that proto.Unmarshal reads it back the same; and what
// plain lets the generated code read, it must read as proto.Unmarshal does
// (plain bytes are never refused). The seeds are envelopes and the kinds of bytes the generated code
// alone would read otherwise.
func FuzzUnmarshal(f *testing.F) {
	good, err := proto.Marshal(&eventv1.Envelope{SchemaVersion: 1, EventId: "e", Tenant: "acme", Payload: []byte(`{}`),
		Attributes: map[string]string{"a": "b"}, OccurredAt: timestamppb.Now(), Result: &eventv1.Result{Stage: "mapper", Attempts: 2}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte("\x12\x02\xff\xfe"))                                 // event_id not UTF-8
	f.Add([]byte("\x10\x01"))                                         // event_id as a varint
	f.Add([]byte("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"))     // a varint past 64 bits
	f.Add([]byte("\x6a\x04\x08\x02\x61\x62"))                         // a map key as a varint
	f.Add([]byte("\x6a\x03\x0a\x04\x61\x12\x01\x62"))                 // a map key past its entry
	f.Add([]byte("\x6a\x04\x1a\x02\x61\x62"))                         // an unknown field in a map entry
	f.Add([]byte("\x5a\x05\x1d\x00\x00\x00\x00\x82\x01\x02\x30\x01")) // fixed32 in a timestamp, then a Result
	f.Fuzz(func(t *testing.T, data []byte) {
		want := &eventv1.Envelope{}
		wantErr := proto.Unmarshal(data, want)
		got, err := Unmarshal(data)
		switch {
		case wantErr != nil && (err == nil || err.Error() != wantErr.Error() || got != nil):
			t.Fatalf("Unmarshal = %v, %v; proto.Unmarshal refuses it: %v", got, err, wantErr)
		case wantErr == nil && (err != nil || !proto.Equal(got, want)):
			t.Fatalf("Unmarshal = %v, %v; proto.Unmarshal reads %v", got, err, want)
		}
		if envelopeShape.plain(data) {
			vt := &eventv1.Envelope{}
			if err := vt.UnmarshalVT(data); wantErr != nil || err != nil || !proto.Equal(vt, want) {
				t.Fatalf("plain bytes: UnmarshalVT = %v, %v; proto.Unmarshal = %v, %v", vt, err, want, wantErr)
			}
		}
		if wantErr != nil {
			return
		}
		again, err := Encode(got)
		back := &eventv1.Envelope{}
		if err != nil || proto.Unmarshal(again, back) != nil || !proto.Equal(back, want) {
			t.Fatalf("Encode(%v) = %q, %v; proto.Unmarshal reads it as %v", got, again, err, back)
		}
	})
}
