package connector

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/syncline/syncline/connectors/webhook"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/ingest"
)

// HooksPath is where the webhook receiver is mounted: a sender POSTs to
// HooksPath + "<tenant>/<endpoint>/<entity>".
const HooksPath = "/hooks/"

// hookPublishTimeout bounds how long a webhook waits for JetStream to store
// its records before it answers 503, well within the time a sender waits.
// hookReadTimeout bounds reading a request's body, so that a sender that
// trickles it holds no connection for long (the server bounds the headers).
const (
	hookPublishTimeout = 10 * time.Second
	hookReadTimeout    = 30 * time.Second
)

// hooks receives webhooks: each request is checked against the endpoint it
// names (webhook.Settings.Read) and its records are published to the ingest
// stream before it is answered.
type hooks struct {
	s          *Service
	pub        *ingest.Publisher
	deliveries *deliveries
	log        *slog.Logger
	now        func() time.Time
}

// MountHooks adds the webhook receiver to mux at HooksPath. The receiver
// checks each request's signature or token itself, against the endpoint's
// secret: mux must not put it behind the API's bearer-token check, since a
// sender (a webshop) holds no Syncline token.
func (s *Service) MountHooks(mux *http.ServeMux) {
	mux.Handle(HooksPath, s.hooks())
}

func (s *Service) hooks() *hooks {
	return &hooks{
		s:          s,
		pub:        ingest.NewPublisher(s.deps.JetStream, s.deps.Tracer, ingest.WithRoutes(s.deps.Flows.Route)),
		deliveries: &deliveries{js: s.deps.JetStream, replicas: s.deps.Bus.Replicas},
		log:        s.log.With("api", "webhooks"),
		now:        time.Now,
	}
}

// hookAnswer is the JSON body of every answer. A refusal has Error only.
type hookAnswer struct {
	Error string `json:"error,omitempty"`
	// EventIDs are the events the delivery's records are stored as, in
	// their order; Duplicates how many of them were stored before (by an
	// earlier attempt of the same delivery).
	EventIDs   []string `json:"eventIds,omitempty"`
	Duplicates int      `json:"duplicates,omitempty"`
}

// unknownHook is the one answer for a tenant, endpoint or entity that does
// not exist, or an endpoint that is no webhook, so that it tells no sender
// which of them exists.
const unknownHook = "no webhook here: check the URL, /hooks/<tenant>/<endpoint>/<entity>, against the endpoint and a flow that reads the entity from it"

func (h *hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.answer(w, http.StatusMethodNotAllowed, hookAnswer{Error: "a webhook is a POST"})
		return
	}
	tenant, endpoint, entity, ok := hookPath(r.URL.Path)
	if !ok {
		h.answer(w, http.StatusNotFound, hookAnswer{Error: unknownHook})
		return
	}
	src := h.source(r.Context(), tenant, endpoint, entity)
	if src == nil {
		h.answer(w, http.StatusNotFound, hookAnswer{Error: unknownHook})
		return
	}
	log := h.log.With("tenant", tenant, "endpoint", endpoint, "entity", entity)
	// A writer that cannot set deadlines (a test's recorder) reads without one.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(hookReadTimeout))
	opened, err := src.OpenSettings(tenant, h.s.deps.Secrets)
	var settings webhook.Settings
	if err == nil {
		settings, err = webhook.Open(h.s.deps.Connectors, opened)
	}
	if err != nil {
		// The operator's to fix (a master key that is not the control
		// plane's, settings of another build): the sender learns only
		// that it is not its fault.
		log.Error("webhook endpoint cannot be opened", "error", err)
		h.answer(w, http.StatusInternalServerError, hookAnswer{Error: "the endpoint cannot be opened here; the platform's operator has the reason in the connector's log"})
		return
	}
	d, err := settings.Read(w, r, h.now())
	var refused *webhook.Error
	if errors.As(err, &refused) {
		log.Debug("webhook refused", "status", refused.Status, "reason", refused.Message)
		h.answer(w, refused.Status, hookAnswer{Error: refused.Message})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), hookPublishTimeout)
	defer cancel()
	var first int64
	for _, rec := range d.Records {
		if rec.Version == 0 && first == 0 {
			if first, err = h.deliveries.first(ctx, tenant, endpoint, entity, d.ID, h.now()); err != nil {
				log.Warn("webhook not stored: the bus did not answer", "delivery", d.ID, "error", err)
				w.Header().Set("Retry-After", "5")
				h.answer(w, http.StatusServiceUnavailable, hookAnswer{Error: "not stored: the event bus did not answer in time; send the delivery again, with the same delivery id"})
				return
			}
		}
	}
	changes := make([]ingest.Change, len(d.Records))
	for i, rec := range d.Records {
		if rec.Version == 0 {
			// Versioned by its first arrival, on every retry.
			rec.Version = first
		}
		changes[i] = ingest.Change{
			EventID: webhook.EventID(tenant, endpoint, entity, d.ID, i),
			Tenant:  tenant, Endpoint: endpoint, Entity: entity,
			Key: rec.Key, Version: rec.Version, Payload: rec.Payload,
			Attributes: map[string]string{"webhook_delivery": d.ID},
		}
	}
	ids, err := h.pub.Publish(ctx, changes...)
	var invalid *ingest.InvalidChangeError
	var unrouted *ingest.UnroutedChangeError
	var dup *ingest.DuplicateError
	var permanent *bus.PermanentError
	switch {
	case errors.As(err, &dup):
		// A retry of a delivery that was stored: it is, so say so again.
		log.Debug("webhook delivery repeated", "delivery", d.ID, "duplicates", len(dup.Duplicates))
		h.answer(w, http.StatusOK, hookAnswer{EventIDs: ids, Duplicates: len(dup.Duplicates)})
	case errors.As(err, &invalid):
		h.answer(w, http.StatusBadRequest, hookAnswer{Error: "the delivery was refused: " + err.Error()})
	case errors.As(err, &unrouted):
		// The flow went between the look-up and the publish.
		h.answer(w, http.StatusNotFound, hookAnswer{Error: unknownHook})
	case errors.As(err, &permanent):
		h.answer(w, http.StatusRequestEntityTooLarge, hookAnswer{Error: err.Error()})
	case err != nil:
		log.Warn("webhook not stored: the bus did not answer", "delivery", d.ID, "error", err)
		w.Header().Set("Retry-After", "5")
		h.answer(w, http.StatusServiceUnavailable, hookAnswer{Error: "not stored: the event bus did not answer in time; send the delivery again, with the same delivery id"})
	default:
		h.answer(w, http.StatusOK, hookAnswer{EventIDs: ids})
	}
}

// source returns the webhook endpoint a flow of the tenant reads the entity
// from, as the newest such flow has it, or nil. A flow applied a moment ago
// is waited for (Index.CatchUp) rather than answered 404.
func (h *hooks) source(ctx context.Context, tenant, endpoint, entity string) *flowconfig.Endpoint {
	find := func() *flowconfig.Endpoint {
		var best *flowconfig.Flow
		for _, f := range h.s.deps.Flows.Match(tenant, endpoint, entity) {
			if f.Source.Type == webhook.Type && (best == nil || f.Generation > best.Generation) {
				best = f
			}
		}
		if best == nil {
			return nil
		}
		return &best.Source
	}
	if src := find(); src != nil {
		return src
	}
	if h.s.deps.Flows.CatchUp(ctx) {
		return find()
	}
	return nil
}

// hookPath splits /hooks/<tenant>/<endpoint>/<entity>.
func hookPath(p string) (tenant, endpoint, entity string, ok bool) {
	rest, ok := strings.CutPrefix(p, HooksPath)
	if !ok {
		return "", "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

func (h *hooks) answer(w http.ResponseWriter, status int, a hookAnswer) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(a)
}
