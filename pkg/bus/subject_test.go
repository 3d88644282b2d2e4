package bus

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func TestPartitionIsStableAndSpread(t *testing.T) {
	// The same key always lands in the same partition (across processes and
	// versions: these values are pinned), and keys spread over all of them.
	pinned := map[string]int{"1001": Partition("1001", 4), "SO-2024-0001": Partition("SO-2024-0001", 4)}
	for k, p := range pinned {
		if got := Partition(k, 4); got != p {
			t.Errorf("Partition(%q) = %d, then %d", k, p, got)
		}
	}
	if got := Partition("", 4); got != 1 {
		t.Errorf(`Partition("", 4) = %d, want 1 (FNV-1a offset basis mod 4)`, got)
	}
	counts := make([]int, 8)
	for i := range 8000 {
		counts[Partition("key-"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune(i)), 8)]++
	}
	for p, n := range counts {
		if n < 500 || n > 1500 {
			t.Errorf("partition %d got %d of 8000 keys: not spread", p, n)
		}
	}
}

func TestValidateToken(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // substring of the error, "" for valid
	}{
		{"simple", "acme", ""},
		{"digits and dashes", "shop-2", ""},
		{"empty", "", "is empty"},
		{"upper case", "Acme", `'A' at position 1`},
		{"dot would split a subject", "a.b", `'.' at position 2`},
		{"wildcard", "a*", `'*' at position 2`},
		{"starts with digit", "1shop", "starting with a letter"},
		{"too long", strings.Repeat("a", 64), "at most 63"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateToken("tenant", tt.in)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("ValidateToken(%q) = %v, want nil", tt.in, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("ValidateToken(%q) = %v, want an error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestTenantOf(t *testing.T) {
	for subject, want := range map[string]string{
		IngestSubject("acme", "shop", "order", "SO-1"): "acme",
		FlowSubject("acme", "orders", 3):               "acme",
		AuditSubject("acme", "", 0):                    "acme",
		"nonsense":                                     "",
	} {
		if got := TenantOf(subject); got != want {
			t.Errorf("TenantOf(%q) = %q, want %q", subject, got, want)
		}
	}
	for _, subject := range []string{AuditSubject("acme", "orders", 3), "audit.acme.orders"} {
		if tenant, flow, ok := AuditRoute(subject); !ok || tenant != "acme" || flow != "orders" {
			t.Errorf("AuditRoute(%q) = %q %q %v, want acme orders", subject, tenant, flow, ok)
		}
	}
	for _, subject := range []string{"flow.acme.orders.1", "audit.acme.orders.x", "audit.acme", "audit.acme.orders.1.2"} {
		if _, _, ok := AuditRoute(subject); ok {
			t.Errorf("AuditRoute took %q", subject)
		}
	}
	if got := AuditSubject("acme", "", 2); got != "audit.acme._.2" {
		t.Errorf("AuditSubject without flow = %q, want audit.acme._.2", got)
	}
}

// TestIngestRoute reads the route of an ingest subject as published, with
// its key's bucket or without, and as stored, with its partition.
func TestIngestRoute(t *testing.T) {
	published := IngestSubject("acme", "shop", "order", "SO-1")
	if want := "ingest.acme.shop.order." + strconv.Itoa(KeyBucket("SO-1")); published != want {
		t.Fatalf("IngestSubject = %q, want %q", published, want)
	}
	for _, subject := range []string{published, "ingest.acme.shop.order", "ingest.acme.shop.order.3"} {
		if tenant, endpoint, entity, ok := IngestRoute(subject); !ok || tenant != "acme" || endpoint != "shop" || entity != "order" {
			t.Errorf("IngestRoute(%q) = %q %q %q %v, want acme shop order", subject, tenant, endpoint, entity, ok)
		}
	}
	for _, subject := range []string{"ingest.acme.shop", "ingest.acme.shop.order.x", "ingest.acme.shop.order.1.2", "audit.acme.shop.order", "ingest..shop.order"} {
		if _, _, _, ok := IngestRoute(subject); ok {
			t.Errorf("IngestRoute took %q", subject)
		}
	}
}

// TestDeadLetterPartition: a dead letter goes to the partition its event
// failed in, read from the stored subject; subjects without one go to 0.
func TestDeadLetterPartition(t *testing.T) {
	for subject, want := range map[string]int{
		"ingest.acme.shop.order.3": 3,
		"ingest.acme.shop.order":   0,
		"flow.acme.orders.5":       5,
		"push.acme.orders.2":       2,
		"audit.acme.orders.7":      7,
		"audit.acme.orders":        0,
		"hold.acme.orders.1":       0,
		"flow.acme.orders.x":       0,
	} {
		if got := SubjectPartition(subject); got != want {
			t.Errorf("SubjectPartition(%q) = %d, want %d", subject, got, want)
		}
	}
	if got := DeadLetterSubject("acme", "dedup", 4); got != "dlq.acme.dedup.4" {
		t.Errorf("DeadLetterSubject = %q, want dlq.acme.dedup.4", got)
	}
	if f := DeadLetterFilters("connector", 0); !slices.Equal(f, []string{"dlq.*.connector.0", "dlq.*.connector"}) {
		t.Errorf("DeadLetterFilters(connector, 0) = %v", f)
	}
}

// TestEveryStoredSubjectHasOneReader: whatever the partition count, each
// ingest and audit subject as the stream stores it (the ingest bucket
// mapped to a partition) is read by exactly one partition's consumer: its
// partition's for a route, partition 0's for anything else a publisher may
// send, and for the audit subjects of earlier versions (no partition).
// Subjects are matched as the server matches them.
func TestEveryStoredSubjectHasOneReader(t *testing.T) {
	seed := time.Now().UnixNano()
	r := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d", seed)
	token := func() string { return []string{"acme", "shop", "order", "7", "0", "x"}[r.IntN(6)] }
	// With one partition, the filter is the stream's own subject, which the
	// server reads in order without matching every message.
	for _, sc := range streamConfigs(DefaultConfig()) {
		var got []string
		switch sc.Name {
		case StreamIngest:
			got = IngestFilters(0, 1)
		case StreamAudit:
			got = AuditFilters(0, 1)
		default:
			continue
		}
		if !slices.Equal(got, sc.Subjects) {
			t.Errorf("one partition of %s: filters %v, want the stream's subjects %v", sc.Name, got, sc.Subjects)
		}
	}
	for n := 1; n <= 5; n++ {
		for range 2000 {
			stream, filters := "ingest", IngestFilters
			if r.IntN(2) == 0 {
				stream, filters = "audit", AuditFilters
			}
			// What a route is stored as: ingest.<tenant>.<endpoint>.<entity>.<partition>,
			// audit.<tenant>.<flow>.<partition>; anything else goes to 0.
			route := map[string]int{"ingest": 5, "audit": 4}[stream]
			tokens := []string{stream}
			size := 1 + r.IntN(route+1)
			if stream == "audit" {
				// Only the stages publish there.
				size = route - 1 - r.IntN(2)
			}
			for range size {
				tokens = append(tokens, token())
			}
			want := 0
			if len(tokens) == route {
				want = r.IntN(n)
				tokens[route-1] = strconv.Itoa(want)
			}
			subject := strings.Join(tokens, ".")
			var readers []int
			for p := range n {
				if slices.ContainsFunc(filters(p, n), func(f string) bool { return server.SubjectMatchesFilter(subject, f) }) {
					readers = append(readers, p)
				}
			}
			if len(readers) != 1 || readers[0] != want {
				t.Fatalf("%d partitions: %s is read by partitions %v, want %d alone (seed %d)", n, subject, readers, want, seed)
			}
		}
	}
}
