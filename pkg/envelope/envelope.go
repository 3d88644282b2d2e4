// Package envelope builds, checks and encodes the change-event envelope
// (syncline.event.v1.Envelope) that every stage of the pipeline passes on.
package envelope

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
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
func Decode(data []byte) (*eventv1.Envelope, error) {
	e := &eventv1.Envelope{}
	if err := proto.Unmarshal(data, e); err != nil {
		return nil, fmt.Errorf("decoding envelope (%d bytes): %w: publish a syncline.event.v1.Envelope in protobuf encoding", len(data), err)
	}
	if err := Check(e); err != nil {
		return nil, err
	}
	return e, nil
}

// Encode marshals an envelope.
func Encode(e *eventv1.Envelope) ([]byte, error) {
	b, err := proto.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encoding envelope %s: %w", e.GetEventId(), err)
	}
	return b, nil
}

// Errors Check returns, for errors.Is.
var (
	ErrMissingKey     = errors.New("source_key is empty")
	ErrPayloadNotJSON = errors.New("payload is not a JSON object")
)

// Check verifies the fields a change event must have. It does not check that
// the tenant, endpoint or flow exist: that is the mapper's question.
func Check(e *eventv1.Envelope) error {
	switch {
	case e.GetSchemaVersion() != SchemaVersion:
		return fmt.Errorf("envelope schema_version %d is not supported: this build reads version %d", e.GetSchemaVersion(), SchemaVersion)
	case e.GetEventId() == "":
		return fmt.Errorf("envelope has no event_id: set a UUIDv7 that is unique per change")
	case e.GetTenant() == "":
		return fmt.Errorf("event %s has no tenant", e.GetEventId())
	case e.GetSourceEndpoint() == "":
		return fmt.Errorf("event %s has no source_endpoint", e.GetEventId())
	case e.GetEntity() == "":
		return fmt.Errorf("event %s has no entity", e.GetEventId())
	case e.GetOperation() == eventv1.Operation_OPERATION_UNSPECIFIED:
		return fmt.Errorf("event %s has no operation: set OPERATION_UPSERT or OPERATION_DELETE", e.GetEventId())
	}
	return nil
}

// CheckPayload verifies that an upsert carries a JSON object. Deletes may
// carry no payload.
func CheckPayload(e *eventv1.Envelope) error {
	p := e.GetPayload()
	if e.GetOperation() == eventv1.Operation_OPERATION_DELETE && len(p) == 0 {
		return nil
	}
	if !isJSONObject(p) {
		return fmt.Errorf("event %s (key %q): %w: send the record as a JSON object, e.g. {\"id\": \"1001\"}", e.GetEventId(), e.GetSourceKey(), ErrPayloadNotJSON)
	}
	return nil
}

func isJSONObject(p []byte) bool {
	i := 0
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i < len(p) && p[i] == '{' && json.Valid(p)
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
