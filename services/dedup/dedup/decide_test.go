package dedup

import (
	"testing"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/stage"
	"github.com/syncline/syncline/services/dedup/ledger"
)

func TestDecide(t *testing.T) {
	upsert := func(id string, version int64, hash string) *eventv1.Envelope {
		return &eventv1.Envelope{EventId: id, Tenant: "acme", Flow: "orders", SourceKey: "1001", SourceVersion: version,
			Operation: eventv1.Operation_OPERATION_UPSERT, Result: &eventv1.Result{ContentHash: hash}}
	}
	del := func(id string, version int64) *eventv1.Envelope {
		e := upsert(id, version, "")
		e.Operation = eventv1.Operation_OPERATION_DELETE
		return e
	}
	applied := func(lastEvent string, version int64, hash, action string, state ledger.State) ledger.Entry {
		return ledger.Entry{ContentHash: hash, SourceVersion: version, State: state, LastEventID: lastEvent, LastAction: action, TargetID: "T1"}
	}
	tests := []struct {
		name       string
		e          *eventv1.Envelope
		cur        ledger.Entry
		exists     bool
		policy     string
		wantAction eventv1.Action
		wantCode   string
		wantRecord bool
		// wantAdvance: the skip raises the entry's version.
		wantAdvance bool
	}{
		{"first time creates", upsert("e1", 1, "h1"), ledger.Entry{}, false, flowconfig.DuplicateUpdate, eventv1.Action_ACTION_CREATED, "", true, false},
		{"same content is skipped", upsert("e2", 2, "h1"), applied("e1", 1, "h1", "created", ledger.StateApplied), true, flowconfig.DuplicateUpdate, eventv1.Action_ACTION_SKIPPED, stage.CodeUnchanged, false, true},
		{"same content while pending is skipped", upsert("e2", 2, "h1"), applied("e1", 1, "h1", "created", ledger.StatePending), true, flowconfig.DuplicateUpdate, eventv1.Action_ACTION_SKIPPED, stage.CodeUnchanged, false, true},
		{"changed content updates", upsert("e2", 2, "h2"), applied("e1", 1, "h1", "created", ledger.StateApplied), true, flowconfig.DuplicateUpdate, eventv1.Action_ACTION_UPDATED, "", true, false},
		{"equal version with new content updates", upsert("e2", 1, "h2"), applied("e1", 1, "h1", "created", ledger.StateApplied), true, flowconfig.DuplicateUpdate, eventv1.Action_ACTION_UPDATED, "", true, false},
		{"older version is never applied", upsert("e0", 0, "h0"), applied("e1", 1, "h1", "created", ledger.StateApplied), true, flowconfig.DuplicateUpdate, eventv1.Action_ACTION_SKIPPED, stage.CodeStaleVersion, false, false},
		{"redelivery repeats the decision", upsert("e1", 1, "h1"), applied("e1", 1, "h1", "created", ledger.StatePending), true, flowconfig.DuplicateUpdate, eventv1.Action_ACTION_CREATED, "", false, false},
		{"redelivery after the target confirmed is finished", upsert("e1", 1, "h1"), applied("e1", 1, "h1", "created", ledger.StateApplied), true, flowconfig.DuplicateUpdate, eventv1.Action_ACTION_CREATED, "", false, false},
		{"skip policy keeps the existing record", upsert("e2", 2, "h2"), applied("e1", 1, "h1", "created", ledger.StateApplied), true, flowconfig.DuplicateSkip, eventv1.Action_ACTION_SKIPPED, stage.CodeDuplicate, false, true},
		{"error policy fails the event", upsert("e2", 2, "h2"), applied("e1", 1, "h1", "created", ledger.StateApplied), true, flowconfig.DuplicateError, eventv1.Action_ACTION_FAILED, stage.CodeDuplicate, false, false},
		{"a failed create is created again, not skipped", upsert("e2", 2, "h1"), applied("e1", 1, "h1", "created", ledger.StateFailed), true, flowconfig.DuplicateSkip, eventv1.Action_ACTION_CREATED, "", true, false},
		{"a failed update is retried with the same content", upsert("e3", 3, "h2"), applied("e2", 2, "h2", "updated", ledger.StateFailed), true, flowconfig.DuplicateUpdate, eventv1.Action_ACTION_UPDATED, "", true, false},
		{"delete of a known record deletes", del("e2", 2), applied("e1", 1, "h1", "created", ledger.StateApplied), true, flowconfig.DuplicateUpdate, eventv1.Action_ACTION_DELETED, "", true, false},
		{"delete of an unknown record is skipped", del("e2", 2), ledger.Entry{}, false, flowconfig.DuplicateUpdate, eventv1.Action_ACTION_SKIPPED, stage.CodeNotInTarget, false, true},
		{"stale delete is skipped", del("e0", 0), applied("e1", 1, "h1", "created", ledger.StateApplied), true, flowconfig.DuplicateUpdate, eventv1.Action_ACTION_SKIPPED, stage.CodeStaleVersion, false, false},
		{"upsert after a delete creates again", upsert("e3", 3, "h1"), applied("e2", 2, "", "deleted", ledger.StatePending), true, flowconfig.DuplicateSkip, eventv1.Action_ACTION_CREATED, "", true, false},
		{"error policy fails a changed record even while pending", upsert("e2", 2, "h2"), applied("e1", 1, "h1", "created", ledger.StatePending), true, flowconfig.DuplicateError, eventv1.Action_ACTION_FAILED, stage.CodeDuplicate, false, false},
		{"a refused create is created again whatever the policy", upsert("e2", 2, "h2"), applied("e1", 1, "h1", "created", ledger.StateFailed), true, flowconfig.DuplicateError, eventv1.Action_ACTION_CREATED, "", true, false},
		{"a replay of refused content is not stale after a newer same content", upsert("e5", 1, "h1"), applied("e1", 3, "h1", "created", ledger.StateFailed), true, flowconfig.DuplicateSkip, eventv1.Action_ACTION_CREATED, "", true, false},
		{"other content older than a refused entry is stale", upsert("e5", 1, "h2"), applied("e1", 3, "h1", "created", ledger.StateFailed), true, flowconfig.DuplicateUpdate, eventv1.Action_ACTION_SKIPPED, stage.CodeStaleVersion, false, false},
		{"a delete after a delete is skipped and advances", del("e3", 3), applied("e2", 2, "", "deleted", ledger.StateApplied), true, flowconfig.DuplicateUpdate, eventv1.Action_ACTION_SKIPPED, stage.CodeNotInTarget, false, true},
		{"an older upsert after an unknown delete is stale", upsert("e1", 1, "h1"), ledger.Entry{SourceVersion: 2, State: ledger.StateApplied, LastAction: "deleted"}, true, flowconfig.DuplicateUpdate, eventv1.Action_ACTION_SKIPPED, stage.CodeStaleVersion, false, false},
		{"a flow that is gone fails", upsert("e1", 1, "h1"), ledger.Entry{}, false, "", eventv1.Action_ACTION_FAILED, stage.CodeFlowGone, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decide(tt.e, tt.cur, tt.exists, tt.policy)
			if d.action != tt.wantAction || d.code != tt.wantCode || d.record != tt.wantRecord || d.advance != tt.wantAdvance {
				t.Errorf("decide = {%v %q record=%v advance=%v} (%s), want {%v %q record=%v advance=%v}", d.action, d.code, d.record, d.advance, d.reason, tt.wantAction, tt.wantCode, tt.wantRecord, tt.wantAdvance)
			}
			if wantDone := tt.exists && tt.cur.LastEventID == tt.e.EventId && tt.cur.State == ledger.StateApplied; d.done != wantDone {
				t.Errorf("decide finished the event: %v, want %v", d.done, wantDone)
			}
			if (d.code != "") != (d.reason != "") {
				t.Errorf("code %q with reason %q: every skip or failure needs both", d.code, d.reason)
			}
		})
	}
}
