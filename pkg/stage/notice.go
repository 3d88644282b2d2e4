package stage

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/syncline/syncline/pkg/bus"
)

// HeaderNotice marks an audit message that is a notice about a flow, not an
// event's outcome. Its value is the notice's kind; its body is a FlowNotice
// in JSON.
const HeaderNotice = "Syncline-Notice"

// Kinds of flow notices.
const (
	// NoticeFlowPaused: the flow's circuit breaker stayed open for several
	// attempts in a row; its events are held, in order, until its target
	// works again.
	NoticeFlowPaused = "flow_paused"
	// NoticeFlowResumed: a paused flow's target works again; its held
	// events are being pushed, oldest first.
	NoticeFlowResumed = "flow_resumed"
)

// FlowNotice tells the eventlog, and through its alerts the tenant, that a
// flow was paused or resumed. It names the flow and the endpoint and carries
// the target's error, never an event's data.
type FlowNotice struct {
	Kind       string `json:"kind"`
	Tenant     string `json:"tenant"`
	Integrator string `json:"integrator,omitempty"`
	Flow       string `json:"flow"`
	// Endpoint is the flow's target endpoint.
	Endpoint string `json:"endpoint"`
	// Reason is the last failure: why the target could not be written.
	Reason string `json:"reason,omitempty"`
	// Failures counts the failed attempts in a row: on a resume, those
	// before the one that worked.
	Failures int `json:"failures"`
	// Since is when the first of them failed; At is when the notice was made.
	Since time.Time `json:"since"`
	At    time.Time `json:"at"`
}

// Notice builds the audit message of n, on its flow's one audit partition
// (bus.NoticePartition) of partitions, so that one consumer reads a flow's
// notices in order.
func Notice(n *FlowNotice, partitions int) (*nats.Msg, error) {
	data, err := json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("encoding a %s notice: %w", n.Kind, err)
	}
	m := nats.NewMsg(bus.AuditSubject(n.Tenant, n.Flow, bus.NoticePartition(n.Tenant, n.Flow, partitions)))
	m.Header.Set(HeaderNotice, n.Kind)
	m.Header.Set(bus.HeaderMsgID, "notice:"+n.Kind+":"+n.Tenant+":"+n.Flow+":"+strconv.FormatInt(n.At.UnixNano(), 10))
	m.Data = data
	return m, nil
}

// ParseNotice reads the notice of an audit message whose HeaderNotice is
// kind.
func ParseNotice(kind string, data []byte) (*FlowNotice, error) {
	n := &FlowNotice{}
	if err := json.Unmarshal(data, n); err != nil {
		return nil, fmt.Errorf("a %s notice that is not JSON: %w", kind, err)
	}
	switch {
	case n.Kind != kind:
		return nil, fmt.Errorf("a notice says %q in its header and %q in its body", kind, n.Kind)
	case kind != NoticeFlowPaused && kind != NoticeFlowResumed:
		return nil, fmt.Errorf("unknown notice kind %q", kind)
	case n.Tenant == "" || n.Flow == "":
		return nil, fmt.Errorf("a %s notice without its tenant or flow", kind)
	}
	return n, nil
}
