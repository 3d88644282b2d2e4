package bus

import (
	"fmt"
	"strconv"
	"strings"
)

// Subjects carry routing only, never personal data:
//
//	ingest.<tenant>.<endpoint>.<entity>
//	flow.<tenant>.<flow>.<partition>
//	push.<tenant>.<flow>.<partition>
//	audit.<tenant>.<flow>
//	dlq.<tenant>.<stage>
//	hold.<tenant>.<flow>
//	hold.<tenant>.<flow>.<partition>
//
// The tenant is always the second token, so any stage can attribute a message
// it cannot decode.

// NoFlow stands in the flow token of an audit subject for events that matched
// no flow (an unknown tenant, endpoint or entity).
const NoFlow = "_"

// NoTenant is the tenant token under which the eventlog keeps the dead letters
// and log records of events addressed to a tenant that does not exist: no
// tenant's token sees them, the admin token does. It cannot be a tenant's
// name, as names start with a letter.
const NoTenant = "_"

// IngestSubject is where a source publishes a change of one entity.
func IngestSubject(tenant, endpoint, entity string) string {
	return "ingest." + tenant + "." + endpoint + "." + entity
}

// FlowSubject is where the mapper puts a mapped event for the dedup stage.
func FlowSubject(tenant, flow string, partition int) string {
	return "flow." + tenant + "." + flow + "." + strconv.Itoa(partition)
}

// PushSubject is where the dedup stage puts an event for the target push.
func PushSubject(tenant, flow string, partition int) string {
	return "push." + tenant + "." + flow + "." + strconv.Itoa(partition)
}

// AuditSubject is where every stage reports outcomes for the API log.
func AuditSubject(tenant, flow string) string {
	if flow == "" {
		flow = NoFlow
	}
	return "audit." + tenant + "." + flow
}

// IngestRoute returns the tenant, endpoint and entity of an ingest subject.
func IngestRoute(subject string) (tenant, endpoint, entity string, ok bool) {
	rest, ok := strings.CutPrefix(subject, "ingest.")
	if !ok {
		return "", "", "", false
	}
	tenant, rest, ok1 := strings.Cut(rest, ".")
	endpoint, entity, ok2 := strings.Cut(rest, ".")
	ok = ok1 && ok2 && tenant != "" && endpoint != "" && entity != "" && !strings.Contains(entity, ".")
	return tenant, endpoint, entity, ok
}

// HoldSubject is where the mapper keeps a flow's events while its
// integrator is inactive.
func HoldSubject(tenant, flow string) string {
	return "hold." + tenant + "." + flow
}

// PausedSubject is where the connector keeps the events of one partition of
// a flow whose circuit breaker is open, until its target works again.
func PausedSubject(tenant, flow string, partition int) string {
	return "hold." + tenant + "." + flow + "." + strconv.Itoa(partition)
}

// DeadLetterSubject is where a stage puts what it could not process.
func DeadLetterSubject(tenant, stage string) string {
	return "dlq." + tenant + "." + stage
}

// AuditRoute returns the tenant and flow of an audit subject.
func AuditRoute(subject string) (tenant, flow string, ok bool) {
	rest, ok := strings.CutPrefix(subject, "audit.")
	if !ok {
		return "", "", false
	}
	tenant, flow, ok = strings.Cut(rest, ".")
	return tenant, flow, ok && !strings.Contains(flow, ".")
}

// TenantOf returns the tenant token of any Syncline subject, or "" when the
// subject has none.
func TenantOf(subject string) string {
	_, rest, ok := strings.Cut(subject, ".")
	if !ok {
		return ""
	}
	tenant, _, _ := strings.Cut(rest, ".")
	return tenant
}

// Partition maps a source key to one of n partitions with 32-bit FNV-1a: cheap,
// allocation-free and stable across processes and versions, which is what
// keeps one key in one partition.
func Partition(key string, n int) int {
	const (
		offset = 2166136261
		prime  = 16777619
	)
	h := uint32(offset)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= prime
	}
	return int(h % uint32(n))
}

// ValidateToken checks that a name can be one token of a subject and a
// resource name: lower-case letters, digits and '-', starting with a letter,
// at most 63 characters. what names the field for the error, e.g. "tenant".
func ValidateToken(what, name string) error {
	if name == "" {
		return fmt.Errorf("%s is empty: give a name of lower-case letters, digits and '-'", what)
	}
	if len(name) > 63 {
		return fmt.Errorf("%s %q is %d characters long: use at most 63", what, name, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z':
		case (c >= '0' && c <= '9' || c == '-') && i > 0:
		default:
			return fmt.Errorf("%s %q has %q at position %d: use lower-case letters, digits and '-', starting with a letter", what, name, c, i+1)
		}
	}
	return nil
}
