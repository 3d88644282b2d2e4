package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"connectrpc.com/connect"

	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
)

// The dead letters pages: the list, and one letter with its actions. A letter's record is
// personal data more often than not: the page never holds it until the user asks with
// "Show the record", a POST (so no browser prefetches or caches it), which the eventlog
// logs under the user's token as it logs `syncline deadletters show --record`.

// deadLetterFilters are the list's filters, as query parameters of the page.
var deadLetterFilters = []string{"flow", "stage", "code", "remote_id", "state"}

// deadLettersData is the list page's filter and letters.
type deadLettersData struct {
	Filter  url.Values
	Letters []*eventlogv1.DeadLetter
	// Next is the query of the next page; empty on the last.
	Next string
}

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request, rq *request) {
	p, ok := c.tenantPage(w, r, rq, "Dead letters")
	if !ok {
		return
	}
	q := r.URL.Query()
	d := &deadLettersData{Filter: url.Values{}}
	for _, f := range deadLetterFilters {
		if v := strings.TrimSpace(q.Get(f)); v != "" {
			d.Filter.Set(f, v)
		}
	}
	p.Data = d
	resp, err := rq.letters.ListDeadLetters(r.Context(), &eventlogv1.ListDeadLettersRequest{
		Filter: &eventlogv1.DeadLetterFilter{Tenant: p.Tenant, Flow: d.Filter.Get("flow"), Stage: d.Filter.Get("stage"),
			Code: d.Filter.Get("code"), RemoteId: d.Filter.Get("remote_id"), State: d.Filter.Get("state")},
		PageSize: 50, PageToken: q.Get("page")})
	if err != nil {
		c.apiError(w, "deadletters", p, err)
		return
	}
	d.Letters = resp.Letters
	if resp.NextPageToken != "" {
		next := url.Values{}
		for k, v := range d.Filter {
			next[k] = v
		}
		next.Set("page", resp.NextPageToken)
		d.Next = next.Encode()
	}
	c.render(w, http.StatusOK, "deadletters", p)
}

// deadLetterData is what the page of one letter shows.
type deadLetterData struct {
	Letter *eventlogv1.DeadLetter
	// Record is the letter's record, only on the page that answers "Show the record" or a
	// refused edit (then the user's own input).
	Record string
	// Shown says Record is on the page.
	Shown bool
	// Confirm is the action the page asks to confirm: "replay" or "discard".
	Confirm string
	// Done says what the last action did, and EventID is the event a replay sent.
	Done, EventID string
}

// deadLetterDone are the notices the letter's page shows after an action, by ?done=.
var deadLetterDone = map[string]string{
	"edited":    "The corrected record is saved. Replay the letter to send it.",
	"replayed":  "Replayed: the record was sent again as a new event.",
	"discarded": "Discarded: the letter's event is dropped.",
}

// letterPage starts the page of the request's dead letter: the tenant's page, and the
// letter as the API gives it (without its record). ok is false, and the refusal written,
// when either is refused.
func (c *Console) letterPage(w http.ResponseWriter, r *http.Request, rq *request) (page, *deadLetterData, bool) {
	p, ok := c.tenantPage(w, r, rq, "Dead letter")
	if !ok {
		return p, nil, false
	}
	resp, err := rq.letters.GetDeadLetter(r.Context(), &eventlogv1.GetDeadLetterRequest{Tenant: p.Tenant, Id: r.PathValue("id")})
	if err != nil {
		c.apiError(w, "deadletter", p, err)
		return p, nil, false
	}
	d := &deadLetterData{Letter: resp.Letter}
	p.Data = d
	return p, d, true
}

func (c *Console) deadLetter(w http.ResponseWriter, r *http.Request, rq *request) {
	p, d, ok := c.letterPage(w, r, rq)
	if !ok {
		return
	}
	q := r.URL.Query()
	if msg, known := deadLetterDone[q.Get("done")]; known {
		d.Done, d.EventID = msg, q.Get("event")
	}
	c.render(w, http.StatusOK, "deadletter", p)
}

// deadLetterRecord shows the letter's record: asked for by a POST, logged by the API.
func (c *Console) deadLetterRecord(w http.ResponseWriter, r *http.Request, rq *request) {
	p, d, ok := c.letterPage(w, r, rq)
	if !ok {
		return
	}
	resp, err := rq.letters.GetDeadLetter(r.Context(), &eventlogv1.GetDeadLetterRequest{Tenant: p.Tenant, Id: d.Letter.Id, IncludeRecord: true})
	if err != nil {
		c.apiError(w, "deadletter", p, err)
		return
	}
	d.Record, d.Shown = indentJSON(resp.Record), true
	c.render(w, http.StatusOK, "deadletter", p)
}

// indentJSON lays a JSON record out for reading and editing; text that is not JSON is
// returned as it is.
func indentJSON(s string) string {
	var buf bytes.Buffer
	if json.Indent(&buf, []byte(s), "", "  ") != nil {
		return s
	}
	return buf.String()
}

// editDeadLetter saves a corrected record. A refusal is shown next to the record's box,
// with the user's input kept.
func (c *Console) editDeadLetter(w http.ResponseWriter, r *http.Request, rq *request) {
	p, d, ok := c.letterPage(w, r, rq)
	if !ok {
		return
	}
	record := r.PostFormValue("record")
	_, err := rq.letters.EditDeadLetter(r.Context(), &eventlogv1.EditDeadLetterRequest{Tenant: p.Tenant, Id: d.Letter.Id, Record: record})
	if err != nil {
		d.Record, d.Shown = record, true
		status := http.StatusBadGateway
		switch connect.CodeOf(err) {
		case connect.CodeInvalidArgument:
			// The record is what the request gives: its refusal belongs next to the box.
			p.FieldErrors = map[string]string{"record": refusalOf(err).Message}
			c.render(w, http.StatusBadRequest, "deadletter", p)
			return
		case connect.CodeFailedPrecondition:
			status = http.StatusConflict
		}
		p.Error = refusalOf(err).Message
		c.render(w, status, "deadletter", p)
		return
	}
	c.redirectToLetter(w, r, p.Tenant, d.Letter.Id, url.Values{"done": {"edited"}})
}

// replayDeadLetter sends the letter again, once the user confirmed it.
func (c *Console) replayDeadLetter(w http.ResponseWriter, r *http.Request, rq *request) {
	p, d, ok := c.letterPage(w, r, rq)
	if !ok {
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		d.Confirm = "replay"
		c.render(w, http.StatusOK, "deadletter", p)
		return
	}
	resp, err := rq.letters.ReplayDeadLetters(r.Context(), &eventlogv1.ReplayDeadLettersRequest{Tenant: p.Tenant, Ids: []string{d.Letter.Id}})
	if err != nil {
		c.apiError(w, "deadletter", p, err)
		return
	}
	done := url.Values{"done": {"replayed"}}
	for _, sent := range resp.Replayed {
		if sent.Id == d.Letter.Id {
			done.Set("event", sent.EventId)
		}
	}
	c.redirectToLetter(w, r, p.Tenant, d.Letter.Id, done)
}

// discardDeadLetter gives the letter up, once the user confirmed it.
func (c *Console) discardDeadLetter(w http.ResponseWriter, r *http.Request, rq *request) {
	p, d, ok := c.letterPage(w, r, rq)
	if !ok {
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		d.Confirm = "discard"
		c.render(w, http.StatusOK, "deadletter", p)
		return
	}
	if _, err := rq.letters.DiscardDeadLetters(r.Context(), &eventlogv1.DiscardDeadLettersRequest{Tenant: p.Tenant, Ids: []string{d.Letter.Id}}); err != nil {
		c.apiError(w, "deadletter", p, err)
		return
	}
	c.redirectToLetter(w, r, p.Tenant, d.Letter.Id, url.Values{"done": {"discarded"}})
}

func (c *Console) redirectToLetter(w http.ResponseWriter, r *http.Request, tenant, id string, q url.Values) {
	http.Redirect(w, r, "/t/"+url.PathEscape(tenant)+"/deadletters/"+url.PathEscape(id)+"?"+q.Encode(), http.StatusSeeOther)
}
