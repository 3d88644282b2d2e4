package bus

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Subjects carry routing only, never personal data:
//
//	ingest.<tenant>.<endpoint>.<entity>.<bucket>   as published (KeyBucket)
//	ingest.<tenant>.<endpoint>.<entity>.<partition> as stored (the stream maps the bucket)
//	ingest.<tenant>.<endpoint>.<entity>            as published without a bucket: partition 0
//	flow.<tenant>.<flow>.<partition>
//	push.<tenant>.<flow>.<partition>
//	audit.<tenant>.<flow>.<partition>
//	dlq.<tenant>.<stage>.<partition>   the partition the event failed in
//	hold.<tenant>.<flow>.mapper.<partition>  the mapper's, per ingest partition
//	hold.<tenant>.<flow>.<partition>         the connector's, per flow partition
//
// The tenant is always the second token, so any stage can attribute a message
// it cannot decode. A partition is always hash(source key) mod the
// deployment's partition count (Config.Partitions), so one key's events stay
// in order through every stage. Audit and hold subjects of earlier versions
// had no partition token (audit.<tenant>.<flow>, hold.<tenant>.<flow>); the
// consumers of partition 0 still read them.

// NoFlow stands in the flow token of an audit subject for events that matched
// no flow (an unknown tenant, endpoint or entity).
const NoFlow = "_"

// NoTenant is the tenant token under which the eventlog keeps the dead letters
// and log records of events addressed to a tenant that does not exist: no
// tenant's token sees them, the admin token does. It cannot be a tenant's
// name, as names start with a letter.
const NoTenant = "_"

// KeyBuckets is how many buckets an ingest subject's last token spreads
// source keys over. The ingest stream maps a bucket to a partition
// (IngestTransform), so publishers need not know the partition count, and a
// bucket number tells nothing about the key.
const KeyBuckets = 1024

// KeyBucket is the bucket of key on an ingest subject.
func KeyBucket(key string) int { return Partition(key, KeyBuckets) }

// IngestSubject is where a source publishes a change of one entity with
// source key key.
func IngestSubject(tenant, endpoint, entity, key string) string {
	return "ingest." + tenant + "." + endpoint + "." + entity + "." + strconv.Itoa(KeyBucket(key))
}

// ingestTransform maps an ingest subject's bucket to one of n partitions
// as the stream stores it. A subject without a bucket (four tokens) is
// stored as it is, and read by partition 0.
func ingestTransform(n int) *jetstream.SubjectTransformConfig {
	return &jetstream.SubjectTransformConfig{
		Source:      "ingest.*.*.*.*",
		Destination: fmt.Sprintf("ingest.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}.{{partition(%d,4)}}", n),
	}
}

// IngestFilters are the filter subjects of the mapper's consumer of
// partition p of n. Partition 0 also reads every ingest subject that is not a
// route (too few tokens, or too many), so that the mapper dead-letters what
// a publisher sent there, with the reason, instead of leaving it unread.
//
// With one partition, that is the whole stream, and the filter is the
// stream's own subject: the server then reads the stream in order, where
// several filters make it intersect every block's subjects with all of them
// for each message it delivers (about 3% of the all-in-one mode's CPU in a
// burst).
func IngestFilters(p, n int) []string {
	switch {
	case n == 1:
		return []string{"ingest.>"}
	case p == 0:
		return []string{"ingest.*.*.*.0", "ingest.*.*.*", "ingest.*", "ingest.*.*", "ingest.*.*.*.*.>"}
	}
	return []string{"ingest.*.*.*." + strconv.Itoa(p)}
}

// AuditFilters are the filter subjects of a consumer of the audit stream's
// partition p of n; with one partition, the stream's own subject (see
// IngestFilters).
func AuditFilters(p, n int) []string {
	switch {
	case n == 1:
		return []string{"audit.>"}
	case p == 0:
		return []string{"audit.*.*.0", "audit.*.*"}
	}
	return []string{"audit.*.*." + strconv.Itoa(p)}
}

// FlowSubject is where the mapper puts a mapped event for the dedup stage.
func FlowSubject(tenant, flow string, partition int) string {
	return "flow." + tenant + "." + flow + "." + strconv.Itoa(partition)
}

// PushSubject is where the dedup stage puts an event for the target push.
func PushSubject(tenant, flow string, partition int) string {
	return "push." + tenant + "." + flow + "." + strconv.Itoa(partition)
}

// AuditSubject is where every stage reports outcomes for the API log:
// partition is the event's flow partition (Partition of its source key), so
// that the eventlog reads one key's outcomes in order.
func AuditSubject(tenant, flow string, partition int) string {
	if flow == "" {
		flow = NoFlow
	}
	return "audit." + tenant + "." + flow + "." + strconv.Itoa(partition)
}

// NoticePartition is the audit partition of a flow's notices, one for all
// of them, so that they are read in order by one consumer.
func NoticePartition(tenant, flow string, n int) int {
	return Partition(tenant+"."+flow, n)
}

// IngestRoute returns the tenant, endpoint and entity of an ingest subject,
// with or without its last (bucket or partition) token.
func IngestRoute(subject string) (tenant, endpoint, entity string, ok bool) {
	// Cut, not Split: the mapper reads every event's route, and this
	// allocates nothing.
	rest, ok := strings.CutPrefix(subject, "ingest.")
	if !ok {
		return "", "", "", false
	}
	tenant, rest, ok1 := strings.Cut(rest, ".")
	endpoint, rest, ok2 := strings.Cut(rest, ".")
	entity, last, hasLast := strings.Cut(rest, ".")
	if !ok1 || !ok2 || tenant == "" || endpoint == "" || entity == "" || hasLast && !isNumber(last) {
		return "", "", "", false
	}
	return tenant, endpoint, entity, true
}

func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// HoldSubject is where the mapper's consumer of ingest partition p keeps a
// flow's events while its integrator is inactive.
func HoldSubject(tenant, flow string, p int) string {
	return "hold." + tenant + "." + flow + ".mapper." + strconv.Itoa(p)
}

// LegacyHoldSubject is where earlier versions kept a flow's held events, for
// all of them: partition 0 of the mapper releases them first.
func LegacyHoldSubject(tenant, flow string) string {
	return "hold." + tenant + "." + flow
}

// PausedSubject is where the connector keeps the events of one partition of
// a flow whose circuit breaker is open, until its target works again.
func PausedSubject(tenant, flow string, partition int) string {
	return "hold." + tenant + "." + flow + "." + strconv.Itoa(partition)
}

// DeadLetterSubject is where a stage puts what it could not process, in
// partition, the one the event failed in (SubjectPartition).
func DeadLetterSubject(tenant, stage string, partition int) string {
	return "dlq." + tenant + "." + stage + "." + strconv.Itoa(partition)
}

// DeadLetterFilters are the filter subjects of a consumer of the dead
// letters of stage ("*" for every stage) in partition p.
func DeadLetterFilters(stage string, p int) []string {
	if p == 0 {
		return []string{"dlq.*." + stage + ".0", "dlq.*." + stage}
	}
	return []string{"dlq.*." + stage + "." + strconv.Itoa(p)}
}

// SubjectPartition is the partition of a stored ingest, flow, push or
// audit subject (its last token), and 0 for a subject without one.
func SubjectPartition(subject string) int {
	tokens := strings.Split(subject, ".")
	switch {
	case len(tokens) == 5 && tokens[0] == "ingest":
	case len(tokens) == 4 && (tokens[0] == "flow" || tokens[0] == "push" || tokens[0] == "audit"):
	default:
		return 0
	}
	p, err := strconv.Atoi(tokens[len(tokens)-1])
	if err != nil || p < 0 {
		return 0
	}
	return p
}

// AuditRoute returns the tenant and flow of an audit subject, with or
// without its partition token.
func AuditRoute(subject string) (tenant, flow string, ok bool) {
	tokens := strings.Split(subject, ".")
	if len(tokens) == 4 && isNumber(tokens[3]) {
		tokens = tokens[:3]
	}
	if len(tokens) != 3 || tokens[0] != "audit" || tokens[1] == "" || tokens[2] == "" {
		return "", "", false
	}
	return tokens[1], tokens[2], true
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
