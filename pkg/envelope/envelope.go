// Package envelope builds, checks and encodes the change-event envelope
// (syncline.event.v1.Envelope) that every stage of the pipeline passes on.
package envelope

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	"github.com/syncline/syncline/pkg/bus"
)

// SchemaVersion is the envelope layout this build writes and reads.
const SchemaVersion = 1

// NewEventID returns a UUIDv7: unique per change and sortable by time, which
// keeps the API log's and the streams' order close to the order of events.
func NewEventID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// Decode parses an envelope and checks what every stage relies on. The error
// says which field is wrong and what to do, because it ends up in the dead
// letter's reason.
func Decode(data []byte) (*eventv1.Envelope, error) { return decode(data, Unmarshal) }

// DecodeStaged is Decode for the bytes a stage wrote with Encode (see
// UnmarshalStaged): the flow, push and audit streams. It checks what Decode
// checks, and its errors are Decode's.
func DecodeStaged(data []byte) (*eventv1.Envelope, error) { return decode(data, UnmarshalStaged) }

func decode(data []byte, unmarshal func([]byte) (*eventv1.Envelope, error)) (*eventv1.Envelope, error) {
	e, err := unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("decoding envelope (%d bytes): %w: publish a syncline.event.v1.Envelope in protobuf encoding", len(data), err)
	}
	if err := Check(e); err != nil {
		return nil, err
	}
	return e, nil
}

// Encode marshals an envelope, as proto.Marshal does.
func Encode(e *eventv1.Envelope) ([]byte, error) {
	b, err := marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encoding envelope %s: %w", e.GetEventId(), err)
	}
	return b, nil
}

// Check verifies the fields every stage relies on: the schema version, an
// event id (ValidateEventID), subject-safe tenant, endpoint and entity names
// (and integrator and flow names when set), an operation, and a valid source
// key when there is one. It does not check that the tenant, endpoint or flow
// exist: that is the mapper's question.
func Check(e *eventv1.Envelope) error {
	if e.GetSchemaVersion() != SchemaVersion {
		return fmt.Errorf("envelope schema_version %d is not supported: this build reads version %d", e.GetSchemaVersion(), SchemaVersion)
	}
	if err := ValidateEventID(e.GetEventId()); err != nil {
		return err
	}
	switch {
	case e.GetTenant() == "":
		return fmt.Errorf("event %s has no tenant", e.GetEventId())
	case e.GetSourceEndpoint() == "":
		return fmt.Errorf("event %s has no source_endpoint", e.GetEventId())
	case e.GetEntity() == "":
		return fmt.Errorf("event %s has no entity", e.GetEventId())
	case e.GetOperation() == eventv1.Operation_OPERATION_UNSPECIFIED:
		return fmt.Errorf("event %s has no operation: set OPERATION_UPSERT or OPERATION_DELETE", e.GetEventId())
	}
	for _, n := range []struct{ what, v string }{
		{"tenant", e.GetTenant()}, {"source_endpoint", e.GetSourceEndpoint()}, {"entity", e.GetEntity()},
		{"integrator", e.GetIntegrator()}, {"flow", e.GetFlow()},
	} {
		if n.v == "" {
			continue
		}
		if err := bus.ValidateToken(n.what, n.v); err != nil {
			return fmt.Errorf("event %s: %w", e.GetEventId(), err)
		}
	}
	if k := e.GetSourceKey(); k != "" {
		if err := ValidateKey(k); err != nil {
			return fmt.Errorf("event %s: %w", e.GetEventId(), err)
		}
	}
	return nil
}

// ContentHash is the hash of a mapped record that the ledger compares to
// tell an unchanged record from a changed one: hex SHA-256 of its bytes.
// The mapper's JSON output is canonical, so equal records hash equal.
func ContentHash(record []byte) string {
	sum := sha256.Sum256(record)
	return hex.EncodeToString(sum[:])
}

// Timestamp converts t for the envelope.
func Timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
