// Package poll is what the platform keeps of polled sources: when each is polled (Schedule,
// from a flow's spec.schedule), where it has read to and how its last poll went (State, in
// a JetStream key-value bucket that every replica shares), which replica polls it now
// (Lease), and the event ids of the changes it reads (EventID). The connector service runs
// the polls (services/connector); the control plane checks schedules, shows the states and
// asks for a poll now.
package poll

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// EventID is the event id of one change a source read: a UUID (version 8) derived from the
// source, the record's key and its version, so a change read twice (a page read again
// after a poll was cut off) has one id and is stored once.
func EventID(src Source, key string, version int64) string {
	h := sha256.New()
	for _, s := range []string{src.Tenant, src.Endpoint, src.Entity, key} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(version))
	h.Write(v[:])
	b := h.Sum(nil)[:16]
	b[6] = b[6]&0x0f | 0x80 // version 8: custom
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
