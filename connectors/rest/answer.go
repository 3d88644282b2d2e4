package rest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/syncline/syncline/pkg/connector"
)

// maxAnswer is the most of an answer the target reads: a lookup by a unique value, a created
// or updated record, or an error message is far smaller. A larger answer is refused rather
// than held in memory; for a lookup it usually means the API ignores the query parameter and
// lists the whole collection.
const maxAnswer = 1 << 20

// maxMessage bounds the part of an error answer that goes into a message.
const maxMessage = 300

// answer is an API's answer, read whole (up to maxAnswer).
type answer struct {
	// what names the request for messages: "POST /customers".
	what   string
	status int
	header http.Header
	body   []byte
}

// isJSON reports whether the answer says it is JSON, or says nothing and looks like it.
func (a *answer) isJSON() bool {
	ct := a.header.Get("Content-Type")
	if ct == "" {
		return json.Valid(a.body)
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// isHTML reports whether the answer is an HTML page.
func (a *answer) isHTML() bool {
	mt, _, _ := mime.ParseMediaType(a.header.Get("Content-Type"))
	return mt == "text/html" || mt == "application/xhtml+xml"
}

// contentType names what the answer is, for messages.
func (a *answer) contentType() string {
	if ct := a.header.Get("Content-Type"); ct != "" {
		return ct
	}
	return "no Content-Type"
}

// decode decodes a JSON answer into v, or says why it cannot, naming the status and what the
// answer is instead.
func (a *answer) decode(v any) error {
	if !a.isJSON() {
		return fmt.Errorf("%s answered %d with %s, not JSON%s: check settings.base_url and the entity's paths",
			a.what, a.status, a.contentType(), a.describe())
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		return fmt.Errorf("%s answered %d with JSON that is not what a JSON API answers here: %v", a.what, a.status, err)
	}
	return nil
}

// describe says, in a few words, what a non-JSON answer holds: an HTML page's title, or the
// start of a text.
func (a *answer) describe() string {
	if m := message(a.header, a.body); m != "" {
		return " (" + m + ")"
	}
	return ""
}

// problem turns an answer that is not 2xx into the error a target returns: a
// *connector.ThrottledError for 429 and 503, and otherwise an error saying what the API
// answered, with its message.
func (a *answer) problem() error {
	err := fmt.Errorf("%s answered %d %s%s", a.what, a.status, http.StatusText(a.status), a.describe())
	switch {
	case a.status == http.StatusTooManyRequests || a.status == http.StatusServiceUnavailable:
		return &connector.ThrottledError{RetryAfter: connector.RetryAfter(a.header, time.Now()), Err: err}
	case a.status == http.StatusUnauthorized || a.status == http.StatusProxyAuthRequired:
		return fmt.Errorf("%w: the API refused the credentials; check settings.auth and the endpoint's credentials", err)
	case a.status >= 300 && a.status < 400:
		if loc := a.header.Get("Location"); loc != "" {
			return fmt.Errorf("%w: redirected to %s; set settings.base_url to where the API is", err, loc)
		}
	}
	return err
}

// refusal reports whether a non-2xx answer to a write is the record's refusal (a 4xx other
// than 401, 407, 408 and 429): retrying the same record will not help. 401 and 407 are the
// endpoint's credentials, which every record shares, so they pause the flow instead of
// dead-lettering each record.
func (a *answer) refusal() bool {
	switch a.status {
	case http.StatusUnauthorized, http.StatusProxyAuthRequired, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return a.status >= 400 && a.status < 500
}

var htmlTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

// messageFields are the fields JSON APIs put their error message in, most specific first.
var messageFields = []string{"message", "error_description", "detail", "error", "title", "errors", "msg", "description"}

// message is the API's own message in an error answer: a JSON answer's message field, an
// HTML page's title, or the start of a text. A JSON answer with none of the usual fields is
// not shown, since it may be the record itself.
func message(h http.Header, body []byte) string {
	ct := h.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	trimmed := bytes.TrimSpace(body)
	switch {
	case len(trimmed) == 0:
		return ""
	case mt == "application/json" || strings.HasSuffix(mt, "+json") || (ct == "" && json.Valid(trimmed)):
		var v any
		if json.Unmarshal(trimmed, &v) != nil {
			return "a JSON answer that does not parse"
		}
		return jsonMessage(v)
	case mt == "text/html" || bytes.HasPrefix(bytes.ToLower(trimmed), []byte("<!doctype html")) || bytes.HasPrefix(bytes.ToLower(trimmed), []byte("<html")):
		if m := htmlTitle.FindSubmatch(trimmed); m != nil {
			return "an HTML page titled " + fmt.Sprintf("%q", clip(html.UnescapeString(strings.TrimSpace(string(m[1])))))
		}
		return "an HTML page"
	case strings.HasPrefix(mt, "text/") || ct == "":
		if !utf8.Valid(trimmed) {
			return "a binary answer"
		}
		return clip(string(trimmed))
	}
	return ""
}

func jsonMessage(v any) string {
	switch v := v.(type) {
	case string:
		return clip(v)
	case []any:
		var parts []string
		for _, item := range v {
			if m := jsonMessage(item); m != "" {
				parts = append(parts, m)
			}
			if len(parts) == 3 {
				break
			}
		}
		return clip(strings.Join(parts, "; "))
	case map[string]any:
		for _, f := range messageFields {
			if m := jsonMessage(v[f]); m != "" {
				return m
			}
		}
		if len(v) > 0 {
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			return clip("no message; the answer's fields are " + strings.Join(keys, ", "))
		}
	}
	return ""
}

// clip shortens s to maxMessage bytes on a rune boundary, on one line.
func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
