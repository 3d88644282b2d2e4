package envelope

import (
	"bytes"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
)

// Every stage decodes and encodes every event, so the envelope has
// reflection-free code of its own (UnmarshalVT, MarshalVT: vtprotobuf's,
// generated beside event.pb.go). That code trusts its input more than
// proto.Unmarshal and proto.Marshal do: it takes strings that are not UTF-8,
// known fields sent with another wire type, varints of more than 64 bits
// and map entries whose parts run past the entry, and it drops a
// timestamp's unknown fields. Anyone may publish to ingest, so it only gets
// what it reads exactly as proto.Unmarshal would (envelopes whose every
// field is known, of its own wire type, UTF-8 where a string), and
// proto.Unmarshal reads the rest: the same envelopes, the same errors, at
// proto.Unmarshal's cost for the unusual ones only. Encode likewise.

// Unmarshal parses an envelope as proto.Unmarshal does, with its errors, and
// checks nothing more: Decode is for stages; Unmarshal is for readers that
// keep what is not a valid event (the API log, dead letters).
func Unmarshal(data []byte) (*eventv1.Envelope, error) {
	e := &eventv1.Envelope{}
	if envelopeShape.plain(data) && unmarshalVT(e, data) == nil {
		return e, nil
	}
	e = &eventv1.Envelope{}
	if err := proto.Unmarshal(data, e); err != nil {
		return nil, err
	}
	return e, nil
}

// UnmarshalStaged is Unmarshal for the bytes a stage wrote with Encode: the
// flow, push and audit streams, where only Syncline's services publish
// (pkg/natsauth gives a tenant's token ingest alone). Encode writes only what
// proto.Marshal writes, which the generated code reads exactly as
// proto.Unmarshal does, so UnmarshalStaged leaves out the check that makes
// sure of that for anyone's bytes: a third of decoding, which every stage
// does for every event. What it reads is still checked for strings that are
// not UTF-8 (the cheap part of the check), and anything the generated code
// refuses or that has such a string goes to Unmarshal, so the errors are
// Unmarshal's: only bytes no protobuf library writes (a known field of
// another wire type, a varint past 64 bits, unknown fields in a timestamp)
// could be read otherwise than Unmarshal reads them.
func UnmarshalStaged(data []byte) (*eventv1.Envelope, error) {
	e := &eventv1.Envelope{}
	if unmarshalVT(e, data) != nil || !stringsUTF8(e) {
		return Unmarshal(data)
	}
	return e, nil
}

// unmarshalVT reads data into e with the generated code, e's strings and
// payload all in one copy of data: one allocation where reading field by
// field makes one for each string (a dozen per envelope, for every stage
// that reads every event) and one for the payload. The copy is e's own, so
// e keeps nothing of data (a frame of hundreds of events, or a buffer its
// caller reuses) and what e keeps alive is at most its own bytes. The
// payload's capacity ends with it, so that an append to it reallocates
// instead of writing over the strings that follow it in the copy.
func unmarshalVT(e *eventv1.Envelope, data []byte) error {
	if err := e.UnmarshalVTUnsafe(bytes.Clone(data)); err != nil {
		return err
	}
	e.Payload = slices.Clip(e.Payload)
	return nil
}

// marshal is proto.Marshal, faster: MarshalVT writes the envelopes it
// writes as proto.Marshal would, and proto.Marshal writes (or refuses) the
// others.
func marshal(e *eventv1.Envelope) ([]byte, error) {
	if !marshalsAsProto(e) {
		return proto.Marshal(e)
	}
	return e.MarshalVT()
}

// marshalsAsProto reports whether MarshalVT writes e as proto.Marshal does:
// whether every string in e is UTF-8, as proto3 requires and MarshalVT does
// not check, and neither timestamp has unknown fields, which vtprotobuf's
// well-known types drop. Tests walk the descriptor, so a string or
// timestamp added to the envelope and left out here fails them.
func marshalsAsProto(e *eventv1.Envelope) bool {
	return !hasUnknown(e.OccurredAt) && !hasUnknown(e.PublishedAt) && stringsUTF8(e)
}

// stringsUTF8 reports whether every string in e is UTF-8.
func stringsUTF8(e *eventv1.Envelope) bool {
	for _, s := range [...]string{e.EventId, e.Tenant, e.Integrator, e.SourceEndpoint, e.Flow, e.Entity, e.SourceKey} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	for k, v := range e.Attributes {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return false
		}
	}
	if r := e.Result; r != nil {
		for _, s := range [...]string{r.Stage, r.TargetId, r.Reason, r.Code, r.ContentHash} {
			if !utf8.ValidString(s) {
				return false
			}
		}
	}
	return true
}

func hasUnknown(t *timestamppb.Timestamp) bool {
	return t != nil && len(t.ProtoReflect().GetUnknown()) > 0
}

// A shape is what the generated code may read of a message: its fields by
// number. It is made from the descriptors, so a field added to the
// envelope is known here too, or, if of a kind not listed, sends every
// envelope that has it to proto.Unmarshal: slower, never wrong.
type shape []wireField

type wireField struct {
	kind wireKind
	sub  shape // a message field's (map entries are messages)
}

type wireKind uint8

const (
	unknownField wireKind = iota
	varintField
	bytesField
	stringField
	messageField
)

var envelopeShape = shapeOf((&eventv1.Envelope{}).ProtoReflect().Descriptor(), nil)

// shapeOf makes md's shape; path holds the messages it is inside, so a
// message that contains itself is left to proto.Unmarshal (its depth
// limit).
func shapeOf(md protoreflect.MessageDescriptor, path []protoreflect.FullName) shape {
	path = append(path, md.FullName())
	fields := md.Fields()
	var s shape
	for i := range fields.Len() {
		fd := fields.Get(i)
		f := wireField{}
		switch kind := fd.Kind(); {
		case fd.IsList():
		case kind == protoreflect.Int32Kind, kind == protoreflect.Int64Kind,
			kind == protoreflect.Uint32Kind, kind == protoreflect.Uint64Kind:
			f.kind = varintField
		case kind == protoreflect.EnumKind && !fd.Enum().IsClosed():
			f.kind = varintField
		case kind == protoreflect.BytesKind:
			f.kind = bytesField
		case kind == protoreflect.StringKind && fd.Syntax() == protoreflect.Proto3:
			f.kind = stringField
		case kind == protoreflect.MessageKind && !contains(path, fd.Message().FullName()):
			f = wireField{kind: messageField, sub: shapeOf(fd.Message(), path)}
		}
		n := int(fd.Number())
		if n >= len(s) {
			s = append(s, make(shape, n+1-len(s))...)
		}
		s[n] = f
	}
	return s
}

func contains(path []protoreflect.FullName, name protoreflect.FullName) bool {
	for _, p := range path {
		if p == name {
			return true
		}
	}
	return false
}

// plain reports whether b is a message of shape s that the generated code
// reads as proto.Unmarshal does: only known fields, each of its wire type,
// no varint longer than ten bytes or past 64 bits, no length past its
// message's end, UTF-8 in every string. One-byte tags and lengths, most of
// an envelope's, are read here; protowire reads the longer ones.
func (s shape) plain(b []byte) bool {
	for len(b) > 0 {
		var (
			num protowire.Number
			typ protowire.Type
			n   = 1
		)
		if b[0] < 0x80 {
			num, typ = protowire.Number(b[0]>>3), protowire.Type(b[0]&7)
		} else if num, typ, n = protowire.ConsumeTag(b); n < 0 {
			return false
		}
		if int(num) >= len(s) {
			return false
		}
		b = b[n:]
		switch f := &s[num]; f.kind {
		case varintField:
			if typ != protowire.VarintType {
				return false
			}
			if len(b) > 0 && b[0] < 0x80 {
				n = 1
			} else if _, n = protowire.ConsumeVarint(b); n < 0 {
				return false
			}
		case bytesField, stringField, messageField:
			if typ != protowire.BytesType {
				return false
			}
			var v []byte
			if len(b) > 0 && b[0] < 0x80 {
				if n = 1 + int(b[0]); n > len(b) {
					return false
				}
				v = b[1:n]
			} else if v, n = protowire.ConsumeBytes(b); n < 0 {
				return false
			}
			if f.kind == stringField && !utf8.Valid(v) || f.kind == messageField && !f.sub.plain(v) {
				return false
			}
		default:
			return false
		}
		b = b[n:]
	}
	return true
}
