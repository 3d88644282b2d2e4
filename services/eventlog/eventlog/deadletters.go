package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/services/eventlog/deadletter"
)

// A dead letter's event is kept sealed: the message as it failed (its
// subject, headers and bytes), as JSON, sealed with the master key and bound
// to the tenant. Without a master key the letter is kept without its event:
// it can be listed and discarded, not replayed.

type sealedMsg struct {
	Subject string      `json:"subject"`
	Header  nats.Header `json:"header"`
	Data    []byte      `json:"data"`
}

func binding(tenant string) string { return "deadletter/" + tenant }

// letterOf is the dead letter of a dead-letter message, for its API log
// record rec.
func (s *Service) letterOf(m jetstream.Msg, rec *eventv1.Envelope, tenant string, now time.Time) (deadletter.Letter, error) {
	h := m.Headers()
	attempts, _ := strconv.Atoi(h.Get(bus.HeaderDeadDeliveries))
	l := deadletter.Letter{
		Tenant: tenant, ID: h.Get(bus.HeaderMsgID), EventID: rec.EventId, Integrator: rec.Integrator, Flow: rec.Flow,
		Entity: rec.Entity, SourceKey: rec.SourceKey, Stage: h.Get(bus.HeaderDeadStage), Code: h.Get(bus.HeaderDeadCode),
		Reason: h.Get(bus.HeaderDeadReason), Attempts: attempts, DeadAt: now,
	}
	if at, err := time.Parse(time.RFC3339Nano, h.Get(bus.HeaderDeadAt)); err == nil {
		l.DeadAt = at
	}
	if l.ID == "" {
		md, err := m.Metadata()
		if err != nil {
			return l, fmt.Errorf("a dead letter without an id or metadata: %w", err)
		}
		l.ID = "dlq:" + md.Stream + ":" + strconv.FormatUint(md.Sequence.Stream, 10)
	}
	if s.deps.Secrets == nil {
		return l, nil
	}
	kept := sealedMsg{Subject: h.Get(bus.HeaderDeadSubject), Header: nats.Header{}, Data: m.Data()}
	for _, k := range []string{"traceparent", "tracestate"} {
		if v := h.Get(k); v != "" {
			kept.Header.Set(k, v)
		}
	}
	data, err := json.Marshal(kept)
	if err != nil {
		return l, err
	}
	if l.Sealed, err = s.deps.Secrets.Seal(binding(tenant), data); err != nil {
		return l, err
	}
	return l, nil
}

// deadLetterHandler serves DeadLetterService.
type deadLetterHandler struct {
	s *Service
}

var _ eventlogv1connect.DeadLetterServiceHandler = (*deadLetterHandler)(nil)

func (h *deadLetterHandler) ListDeadLetters(ctx context.Context, req *eventlogv1.ListDeadLettersRequest) (*eventlogv1.ListDeadLettersResponse, error) {
	f, err := filterOf(ctx, req.GetFilter())
	if err != nil {
		return nil, err
	}
	f.Limit, f.Cursor = int(req.PageSize), req.PageToken
	page, err := h.s.deps.DeadLetters.List(ctx, f)
	if err != nil {
		return nil, listError(err)
	}
	resp := &eventlogv1.ListDeadLettersResponse{NextPageToken: page.NextCursor}
	for _, l := range page.Letters {
		resp.Letters = append(resp.Letters, toProto(l))
	}
	return resp, nil
}

// listError maps a listing's error: a bad page token is the caller's, the
// rest the store's.
func listError(err error) error {
	if errors.Is(err, deadletter.ErrBadCursor) {
		return connect.NewError(connect.CodeInvalidArgument, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}

func filterOf(ctx context.Context, f *eventlogv1.DeadLetterFilter) (deadletter.Filter, error) {
	tenant, err := logTenant(ctx, f.GetTenant())
	if err != nil {
		return deadletter.Filter{}, err
	}
	out := deadletter.Filter{Tenant: tenant, Flow: f.GetFlow(), Stage: f.GetStage(), Code: f.GetCode(), SourceKey: f.GetRemoteId(),
		Entity: f.GetEntity(), State: deadletter.State(f.GetState())}
	switch out.State {
	case "", deadletter.StateOpen, deadletter.StateReplayed, deadletter.StateDiscarded:
	default:
		return out, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("state %q: use open, replayed or discarded", out.State))
	}
	if f.GetFrom() != nil {
		out.From = f.GetFrom().AsTime()
	}
	if f.GetTo() != nil {
		out.To = f.GetTo().AsTime()
	}
	return out, nil
}

func (h *deadLetterHandler) GetDeadLetter(ctx context.Context, req *eventlogv1.GetDeadLetterRequest) (*eventlogv1.GetDeadLetterResponse, error) {
	tenant, err := logTenant(ctx, req.Tenant)
	if err != nil {
		return nil, err
	}
	l, err := h.get(ctx, tenant, req.Id)
	if err != nil {
		return nil, err
	}
	resp := &eventlogv1.GetDeadLetterResponse{Letter: toProto(l)}
	if !req.IncludeRecord {
		return resp, nil
	}
	msg, e, err := h.s.open(l)
	if err != nil {
		return nil, err
	}
	p, _ := auth.FromContext(ctx)
	h.s.log.Info("dead letter record shown", "tenant", tenant, "dead_letter", l.ID, "by", p.String())
	if e != nil {
		resp.Record = string(e.Payload)
	} else {
		resp.Record = string(msg.Data)
	}
	return resp, nil
}

func (h *deadLetterHandler) get(ctx context.Context, tenant, id string) (deadletter.Letter, error) {
	l, err := h.s.deps.DeadLetters.Get(ctx, tenant, id)
	if errors.Is(err, deadletter.ErrNotFound) {
		return l, connect.NewError(connect.CodeNotFound, fmt.Errorf("%w: list them with `syncline deadletters list`", err))
	}
	if err != nil {
		return l, connect.NewError(connect.CodeInternal, err)
	}
	return l, nil
}

// open unseals a letter's message; e is its envelope, nil when the message
// was not one (bytes no stage could decode).
func (s *Service) open(l deadletter.Letter) (sealedMsg, *eventv1.Envelope, error) {
	var msg sealedMsg
	switch {
	case l.State == deadletter.StateDiscarded:
		return msg, nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("dead letter %s was discarded: its event is gone", l.ID))
	case l.Sealed == "":
		return msg, nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("dead letter %s was kept without its event: the eventlog had no master key (SYNCLINE_MASTER_KEY) when it failed", l.ID))
	case s.deps.Secrets == nil:
		return msg, nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("the eventlog has no master key: set SYNCLINE_MASTER_KEY as on the control plane"))
	}
	data, err := s.deps.Secrets.Open(binding(l.Tenant), l.Sealed)
	if err == nil {
		err = json.Unmarshal(data, &msg)
	}
	if err != nil {
		return msg, nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("dead letter %s: %w", l.ID, err))
	}
	e, err := envelope.Unmarshal(msg.Data)
	if err != nil || envelope.Check(e) != nil {
		return msg, nil, nil
	}
	return msg, e, nil
}

func (h *deadLetterHandler) EditDeadLetter(ctx context.Context, req *eventlogv1.EditDeadLetterRequest) (*eventlogv1.EditDeadLetterResponse, error) {
	tenant, err := logTenant(ctx, req.Tenant)
	if err != nil {
		return nil, err
	}
	if err := checkRecord(req.Record); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	l, err := h.get(ctx, tenant, req.Id)
	if err != nil {
		return nil, err
	}
	msg, e, err := h.s.open(l)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("dead letter %s is not an event any stage could read, so it has no record to edit: discard it", l.ID))
	}
	e.Payload = []byte(req.Record)
	if msg.Data, err = envelope.Encode(e); err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	sealed, err := h.s.deps.Secrets.Seal(binding(tenant), data)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	if err := h.s.deps.DeadLetters.SetSealed(ctx, tenant, l.ID, sealed); err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	p, _ := auth.FromContext(ctx)
	h.s.log.Info("dead letter record edited", "tenant", tenant, "dead_letter", l.ID, "by", p.String())
	l.State = deadletter.StateOpen
	return &eventlogv1.EditDeadLetterResponse{Letter: toProto(l)}, nil
}

// checkRecord says what is wrong with a corrected record, and where: it must be a JSON
// object.
func checkRecord(record string) error {
	if strings.TrimSpace(record) == "" {
		return errors.New("record: empty: give the corrected record as a JSON object")
	}
	var v any
	if err := json.Unmarshal([]byte(record), &v); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return fmt.Errorf("record: not JSON at byte %d (%v): give the corrected record as a JSON object", syntax.Offset, err)
		}
		return fmt.Errorf("record: not JSON (%v): give the corrected record as a JSON object", err)
	}
	if _, ok := v.(map[string]any); !ok {
		return fmt.Errorf("record: a JSON %s, not an object: give the corrected record as a JSON object, {\"field\": value, ...}", jsonKind(v))
	}
	return nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "array"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	}
	return "value"
}

// maxReplay bounds one replay request.
const maxReplay = deadletter.MaxLimit

func (h *deadLetterHandler) ReplayDeadLetters(ctx context.Context, req *eventlogv1.ReplayDeadLettersRequest) (*eventlogv1.ReplayDeadLettersResponse, error) {
	tenant, err := logTenant(ctx, req.Tenant)
	if err != nil {
		return nil, err
	}
	letters, err := h.select_(ctx, tenant, req.Ids, req.Filter)
	if err != nil {
		return nil, err
	}
	resp := &eventlogv1.ReplayDeadLettersResponse{}
	msgs := make([]*nats.Msg, 0, len(letters))
	for _, l := range letters {
		m, eventID, err := h.s.replayMsg(l)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
		resp.Replayed = append(resp.Replayed, &eventlogv1.Replayed{Id: l.ID, EventId: eventID})
	}
	if err := h.s.pub.Publish(ctx, msgs...); err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("replaying: %w (nothing is marked replayed; try again)", err))
	}
	ids := make([]string, len(letters))
	for i, l := range letters {
		ids[i] = l.ID
	}
	if err := h.s.deps.DeadLetters.MarkReplayed(ctx, tenant, ids...); err != nil {
		// The events are sent; only their letters' state lags.
		h.s.log.Warn("marking replayed dead letters", "tenant", tenant, "error", err)
	}
	return resp, nil
}

// select_ resolves a request's letters: by id, or by filter (open ones by
// default), at most maxReplay.
func (h *deadLetterHandler) select_(ctx context.Context, tenant string, ids []string, filter *eventlogv1.DeadLetterFilter) ([]deadletter.Letter, error) {
	var out []deadletter.Letter
	if len(ids) > 0 {
		if len(ids) > maxReplay {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%d ids: at most %d per request", len(ids), maxReplay))
		}
		for _, id := range ids {
			l, err := h.get(ctx, tenant, id)
			if err != nil {
				return nil, err
			}
			out = append(out, l)
		}
		return out, nil
	}
	if filter == nil || proto.Equal(filter, &eventlogv1.DeadLetterFilter{Tenant: filter.GetTenant()}) {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("name the dead letters by id, or select them with a filter (flow, stage, code, remote id, entity, state or dates)"))
	}
	// The request names the tenant; a filter naming another one is a
	// mistake or an attempt, never silently another tenant's letters.
	if ft := filter.GetTenant(); ft != "" && ft != tenant {
		if _, err := auth.Tenant(ctx, ft); err != nil {
			return nil, err
		}
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("filter.tenant %q differs from the request's tenant %q: name the tenant once, in the request's tenant", ft, tenant))
	}
	filter.Tenant = tenant
	f, err := filterOf(ctx, filter)
	if err != nil {
		return nil, err
	}
	if f.State == "" {
		f.State = deadletter.StateOpen
	}
	f.Limit, f.WithSealed = maxReplay, true
	page, err := h.s.deps.DeadLetters.List(ctx, f)
	if err != nil {
		return nil, listError(err)
	}
	return page.Letters, nil
}

// replayMsg is the message that sends a letter again: a new event (new id,
// the same key, version and record), to the stream of the stage it failed
// at; a push the connector failed goes back through dedup and the ledger.
func (s *Service) replayMsg(l deadletter.Letter) (*nats.Msg, string, error) {
	msg, e, err := s.open(l)
	if err != nil {
		return nil, "", err
	}
	subject := msg.Subject
	if rest, ok := strings.CutPrefix(subject, "push."); ok {
		subject = "flow." + rest
	}
	if tenant, endpoint, entity, ok := bus.IngestRoute(subject); ok {
		// Stored with its partition: sent again on the key's bucket, which
		// the stream maps to the key's partition as it maps a new change's
		// (the partition token read as a bucket would land elsewhere).
		subject = "ingest." + tenant + "." + endpoint + "." + entity
		if e != nil && e.SourceKey != "" {
			subject = bus.IngestSubject(tenant, endpoint, entity, e.SourceKey)
		}
	}
	id := envelope.NewEventID()
	data := msg.Data
	if e != nil {
		e.EventId = id
		if r := e.GetResult(); r != nil && len(e.Payload) > 0 && !strings.HasPrefix(subject, "ingest.") {
			r.ContentHash = envelope.ContentHash(e.Payload)
		}
		if data, err = envelope.Encode(e); err != nil {
			return nil, "", connect.NewError(connect.CodeInternal, err)
		}
	}
	out := nats.NewMsg(subject)
	for k, v := range msg.Header {
		out.Header[k] = v
	}
	out.Header.Set(bus.HeaderMsgID, id)
	out.Data = data
	return out, id, nil
}

func (h *deadLetterHandler) DiscardDeadLetters(ctx context.Context, req *eventlogv1.DiscardDeadLettersRequest) (*eventlogv1.DiscardDeadLettersResponse, error) {
	tenant, err := logTenant(ctx, req.Tenant)
	if err != nil {
		return nil, err
	}
	switch {
	case len(req.Ids) == 0:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("name the dead letters to discard by id"))
	case len(req.Ids) > maxReplay:
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%d ids: at most %d per request", len(req.Ids), maxReplay))
	}
	// All or none: an id that does not exist discards nothing.
	err = h.s.deps.DeadLetters.Discard(ctx, tenant, req.Ids...)
	if errors.Is(err, deadletter.ErrNotFound) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("%w; nothing was discarded", err))
	}
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	return &eventlogv1.DiscardDeadLettersResponse{Discarded: int64(len(slices.Compact(slices.Sorted(slices.Values(req.Ids)))))}, nil
}

func toProto(l deadletter.Letter) *eventlogv1.DeadLetter {
	return &eventlogv1.DeadLetter{
		Id: l.ID, Tenant: l.Tenant, EventId: l.EventID, Integrator: l.Integrator, Flow: l.Flow, Entity: l.Entity,
		RemoteId: l.SourceKey, Stage: l.Stage, Code: l.Code, Reason: l.Reason, Attempts: uint32(l.Attempts),
		DeadAt: timestamppb.New(l.DeadAt), State: string(l.State), Replays: uint32(l.Replays),
	}
}
