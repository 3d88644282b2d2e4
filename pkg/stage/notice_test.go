package stage_test

import (
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/stage"
)

func TestNoticeRoundTrip(t *testing.T) {
	at := time.Date(2026, 3, 4, 10, 0, 3, 0, time.UTC)
	n := &stage.FlowNotice{Kind: stage.NoticeFlowPaused, Tenant: "acme", Integrator: "sync", Flow: "orders", Endpoint: "erp",
		Reason: "connection refused", Failures: 3, Since: at.Add(-3 * time.Second), At: at}
	m, err := stage.Notice(n, 4)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != bus.AuditSubject("acme", "orders", bus.NoticePartition("acme", "orders", 4)) || m.Header.Get(stage.HeaderNotice) != stage.NoticeFlowPaused || m.Header.Get(bus.HeaderMsgID) == "" {
		t.Errorf("notice message on %s with headers %v", m.Subject, m.Header)
	}
	got, err := stage.ParseNotice(m.Header.Get(stage.HeaderNotice), m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *n {
		t.Errorf("parsed %+v, want %+v", got, n)
	}
}

func TestParseNoticeRefuses(t *testing.T) {
	for _, c := range []struct{ kind, body, want string }{
		{stage.NoticeFlowPaused, `{`, "not JSON"},
		{stage.NoticeFlowPaused, `{"kind":"flow_resumed","tenant":"acme","flow":"orders"}`, "in its header"},
		{"flow_exploded", `{"kind":"flow_exploded","tenant":"acme","flow":"orders"}`, "unknown notice kind"},
		{stage.NoticeFlowPaused, `{"kind":"flow_paused","flow":"orders"}`, "without its tenant or flow"},
	} {
		if _, err := stage.ParseNotice(c.kind, []byte(c.body)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseNotice(%s, %s) = %v, want an error saying %q", c.kind, c.body, err, c.want)
		}
	}
}
