package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/syncline/syncline/pkg/connector"
)

// The polled side. Every Read asks the API afresh for the records changed at or after the
// cursor's time (since_param), sorted by (changed, key), and skips those it already read at
// exactly that time, whose keys the cursor keeps. Records that change while a poll pages
// through them move to the end of that order, where a later Read finds them; they cannot
// shift a page under the reader, as no Read goes on from where the previous one's page ended
// but from the time of its last record. The pagination style is only needed when more
// records than one page share the cursor's time (a bulk import): the Read then steps through
// them, and checks that nothing shifted between two of its requests (the page before is
// asked again, or the requests overlap by one record); when something did, it reads the
// whole group again instead of going on.

const (
	// maxPage is the most of one page's answer a source reads: page_size records.
	maxPage = 16 << 20
	// maxAttempts is how many times a Read starts again when records shift under it.
	maxAttempts = 5
	// maxFetches bounds the requests of one Read, against an API whose next links go round.
	maxFetches = 1000
)

// PolledSource reads the changes of the polled entities of one API.
type PolledSource struct {
	*client
	// polled holds the entities that have source settings.
	polled map[string]*Source
}

var _ connector.Source = (*PolledSource)(nil)

// OpenSource returns a source for the API of s, whose settings parse checked. Every
// connection goes through env's egress policy and every request through env's budget (one
// made from s when env has none), as a target's do. ctx is not used: the source connects
// when it first reads.
func OpenSource(_ context.Context, s Settings, env connector.Env) (*PolledSource, error) {
	if env.Egress == nil {
		return nil, errors.New("opening the rest source: no egress policy was given")
	}
	if s.BaseURL == nil {
		return nil, errors.New("opening the rest source: the settings were not checked (use Register, or parse them)")
	}
	polled := map[string]*Source{}
	for name, e := range s.Entities {
		if e.Source != nil {
			polled[name] = e.Source
		}
	}
	if len(polled) == 0 {
		return nil, &connector.SettingsError{Path: "settings.entities", Reason: "no entity has source settings, so there is nothing to poll; give one a source map, such as source: {changed_field: updatedAt, since_param: updatedAt_gte}"}
	}
	return &PolledSource{client: newClient(s, env), polled: polled}, nil
}

// sourceEntities lists the entities settings can be polled for: those with source settings.
func sourceEntities(settings map[string]any) ([]string, error) {
	s, err := parse(settings)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, name := range slices.Sorted(maps.Keys(s.Entities)) {
		if s.Entities[name].Source != nil {
			names = append(names, name)
		}
	}
	return names, nil
}

// record is one record of a page, as read.
type record struct {
	key string
	// since is the changed field as the API wrote it (a string's value, a number's text),
	// which is what goes back in since_param: an API that compares its own text (json-server
	// compares strings) then finds the record again.
	since string
	// at is when it changed, in Unix microseconds.
	at      int64
	deleted bool
	raw     json.RawMessage
}

// fetched is one answer: its records and how to ask for the page after it (nil: the last).
type fetched struct {
	req     *request
	records []record
	next    *request
}

// request is one page to ask for: by number, offset or the API's cursor, or a next link.
type request struct {
	page   int
	offset int
	cursor string
	link   *url.URL
}

// Read implements connector.Source: at most page_size changes of entity made at or after the
// cursor's time, skipping those read already.
func (p *PolledSource) Read(ctx context.Context, entity, cursor string) (connector.Page, error) {
	e, ok := p.polled[entity]
	if !ok {
		return connector.Page{}, fmt.Errorf("reading %s changes: the endpoint polls no %q entity; settings.entities has source settings for %s",
			entity, entity, strings.Join(slices.Sorted(maps.Keys(p.polled)), ", "))
	}
	pos, err := decodeCursor(cursor, entity, e.ChangedField)
	if err != nil {
		return connector.Page{}, fmt.Errorf("reading %s changes: %w", entity, err)
	}
	jump := true
	for attempt := 1; ; attempt++ {
		page, shifted, err := p.read(ctx, entity, e, pos, jump)
		if err != nil {
			return connector.Page{}, fmt.Errorf("reading %s changes: %w", entity, err)
		}
		if !shifted {
			return page, nil
		}
		if attempt == maxAttempts {
			return connector.Page{}, fmt.Errorf("reading %s changes: the records changed at %s kept shifting between the pages of one read, %d times; the next poll tries again",
				entity, pos.Since, maxAttempts)
		}
		jump = false
	}
}

// read makes one attempt at a Read. shifted says that records moved between two of its
// requests, so that a page may have skipped one: the attempt's changes are dropped, and the
// caller starts again from the first page (jump false).
func (p *PolledSource) read(ctx context.Context, entity string, e *Source, pos position, jump bool) (connector.Page, bool, error) {
	seen := make(map[string]bool, len(pos.Keys))
	for _, k := range pos.Keys {
		seen[k] = true
	}
	req, jumped := firstRequest(e, len(pos.Keys), jump)
	var prev *fetched
	var got []record
	last := int64(math.MinInt64) // the time of the last record of the answers so far
	more := false
	for n := 0; ; n++ {
		if n == maxFetches {
			return connector.Page{}, false, fmt.Errorf("stepped through %d pages of records changed at %s without an end; check settings.entities.%s.source.pagination", maxFetches, pos.Since, entity)
		}
		f, err := p.fetch(ctx, entity, e, pos, req)
		if err != nil {
			return connector.Page{}, false, err
		}
		records := f.records
		if jumped && n == 0 {
			// Read on from the first record not read at the cursor's time: the records read
			// are the first of the group in its order, so if the page starts with one of them,
			// every record before it was read too. If it does not, some left the group.
			if len(records) == 0 || records[0].at != pos.At || !seen[records[0].key] {
				return connector.Page{}, true, nil
			}
		}
		if prev != nil {
			same, rest, err := p.unshifted(ctx, entity, e, pos, prev, f)
			if err != nil {
				return connector.Page{}, false, err
			}
			if !same {
				return connector.Page{}, true, nil
			}
			records = rest
		}
		for _, r := range records {
			if r.at < last {
				return connector.Page{}, false, fmt.Errorf("the API did not sort the records by %s: record %q (%s) came after one changed at %s; set settings.entities.%s.source.sort to sort by it, then by the key, ascending",
					e.ChangedField, r.key, r.since, time.UnixMicro(last).UTC().Format(time.RFC3339Nano), entity)
			}
			last = r.at
			if pos.Started && r.at < pos.At {
				return connector.Page{}, false, fmt.Errorf("the API answered record %q changed at %s, before the %s=%s asked for: check settings.entities.%s.source.since_param (it must ask for records changed at or after a time) and changed_format",
					r.key, r.since, e.SinceParam, pos.Since, entity)
			}
			if pos.Started && r.at == pos.At && seen[r.key] {
				continue
			}
			if len(got) == e.PageSize {
				more = true
				break
			}
			got = append(got, r)
		}
		if len(got) > 0 || f.next == nil {
			more = more || f.next != nil
			break
		}
		prev, req = f, f.next
	}
	page := connector.Page{Changes: make([]connector.Change, 0, len(got)), More: more}
	next := pos
	for _, r := range got {
		page.Changes = append(page.Changes, connector.Change{Key: r.key, Version: r.at, Delete: r.deleted, Payload: r.raw, OccurredAt: time.UnixMicro(r.at).UTC()})
		switch {
		case !next.Started || r.at > next.At:
			next = position{Started: true, At: r.at, Since: r.since, Keys: []string{r.key}}
		case r.at == next.At:
			next.Keys = append(slices.Clip(next.Keys), r.key)
			// Ties written differently (12:00:00Z, 12:00:00.000Z) send the one that sorts
			// first, so that an API comparing text still finds them all.
			next.Since = min(next.Since, r.since)
		}
	}
	var err error
	if page.Cursor, err = encodeCursor(entity, e.ChangedField, next); err != nil {
		return connector.Page{}, false, err
	}
	return page, false, nil
}

// firstRequest is where a Read starts: the first page, or, for the page and offset styles
// when more records than a page were read at the cursor's time already, the page of the last
// of them (jumped true), so that a large group is not stepped through again on every Read.
func firstRequest(e *Source, read int, jump bool) (*request, bool) {
	switch {
	case e.Pagination == PageOffset && jump && read > e.PageSize:
		return &request{offset: read - 1}, true
	case e.Pagination == PagePages && jump && read > e.PageSize:
		return &request{page: (read-1)/e.PageSize + 1}, true
	case e.Pagination == PagePages:
		return &request{page: 1}, false
	}
	return &request{}, false
}

// unshifted checks that nothing moved between prev and f, the page after it, and returns the
// records of f that are new. For the offset style, the two overlap by one record, which must
// be the same; for the page and link styles, prev's page is asked for again and must be the
// same. The cursor style trusts the API's cursor to be stable.
func (p *PolledSource) unshifted(ctx context.Context, entity string, e *Source, pos position, prev, f *fetched) (bool, []record, error) {
	switch e.Pagination {
	case PageOffset:
		if len(f.records) == 0 || !sameRecord(f.records[0], prev.records[len(prev.records)-1]) {
			return false, nil, nil
		}
		return true, f.records[1:], nil
	case PagePages, PageLink:
		again, err := p.fetch(ctx, entity, e, pos, prev.req)
		if err != nil {
			return false, nil, err
		}
		if !slices.EqualFunc(again.records, prev.records, sameRecord) {
			return false, nil, nil
		}
	}
	return true, f.records, nil
}

func sameRecord(a, b record) bool { return a.key == b.key && a.at == b.at }

// fetch asks for one page of the records changed at or after pos.
func (p *PolledSource) fetch(ctx context.Context, entity string, e *Source, pos position, req *request) (*fetched, error) {
	var u *url.URL
	if req.link != nil {
		u = req.link
	} else {
		q := url.Values{}
		for k, v := range e.Sort {
			q.Set(k, v)
		}
		if pos.Started {
			q.Set(e.SinceParam, pos.Since)
		}
		q.Set(e.LimitParam, strconv.Itoa(e.PageSize))
		switch e.Pagination {
		case PagePages:
			q.Set(e.PageParam, strconv.Itoa(req.page))
		case PageOffset:
			q.Set(e.OffsetParam, strconv.Itoa(req.offset))
		case PageLink:
			if e.PageParam != "" {
				q.Set(e.PageParam, "1")
			}
		case PageCursor:
			if req.cursor != "" {
				q.Set(e.CursorParam, req.cursor)
			}
		}
		base := *p.s.BaseURL
		u = &base
		u.Path += e.Path
		u.RawPath = ""
		u.RawQuery = q.Encode()
	}
	what := http.MethodGet + " " + strings.TrimPrefix(u.RequestURI(), p.s.BaseURL.Path)
	a, err := p.do(ctx, http.MethodGet, u.String(), what, nil, maxPage, func(what string, status int, size string) error {
		return fmt.Errorf("%s answered %d with %s, over the %d MiB a page may have: lower settings.entities.%s.source.page_size", what, status, size, maxPage>>20, entity)
	})
	if err != nil {
		return nil, err
	}
	if a.status < 200 || a.status > 299 {
		err := a.problem()
		if a.status == http.StatusNotFound {
			err = fmt.Errorf("%w: check settings.entities.%s.source.path", err, entity)
		}
		return nil, err
	}
	f := &fetched{req: req}
	var list []json.RawMessage
	var body json.RawMessage
	if err := a.decode(&body); err != nil {
		return nil, err
	}
	if e.RecordsField == "" {
		if err := json.Unmarshal(body, &list); err != nil || list == nil && !bytes.Equal(bytes.TrimSpace(body), []byte("[]")) {
			return nil, fmt.Errorf("%s answered with JSON that is not a list; if the records are a field of an object, name it in settings.entities.%s.source.records_field", a.what, entity)
		}
	} else {
		raw, ok := fieldAt(body, e.RecordsField)
		if ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			ok = json.Unmarshal(raw, &list) == nil
		}
		if !ok {
			return nil, fmt.Errorf("%s answered with no list in its field %q (settings.entities.%s.source.records_field)", a.what, e.RecordsField, entity)
		}
	}
	f.records = make([]record, 0, len(list))
	for i, raw := range list {
		r, err := readRecord(raw, e)
		if err != nil {
			return nil, fmt.Errorf("%s answered with a list whose entry %d %v (settings.entities.%s.source)", a.what, i, err, entity)
		}
		f.records = append(f.records, r)
	}
	if f.next, err = nextRequest(p.s.BaseURL, u, e, req, a, body, len(list)); err != nil {
		return nil, fmt.Errorf("%s: %w (settings.entities.%s.source.pagination)", a.what, err, entity)
	}
	return f, nil
}

// nextRequest says how to ask for the page after the answer a to req, at u; nil when it was
// the last page: a page or offset page with fewer records than page_size, an answer with no
// rel="next" link, or with no next cursor (or no records).
func nextRequest(base, u *url.URL, e *Source, req *request, a *answer, body json.RawMessage, n int) (*request, error) {
	switch e.Pagination {
	case PagePages:
		if n < e.PageSize {
			return nil, nil
		}
		return &request{page: req.page + 1}, nil
	case PageOffset:
		if n < e.PageSize {
			return nil, nil
		}
		// The next page starts with the last record of this one, to see whether anything
		// shifted between the two requests.
		return &request{offset: req.offset + n - 1}, nil
	case PageLink:
		link := nextLink(a.header)
		if link == "" {
			return nil, nil
		}
		next, err := u.Parse(link)
		if err != nil {
			return nil, fmt.Errorf("the Link header's next %q is not a URL", link)
		}
		if next.Scheme != base.Scheme || next.Host != base.Host {
			return nil, fmt.Errorf("the Link header's next %q is not on %s, and the credentials go only there", link, base.Scheme+"://"+base.Host)
		}
		return &request{link: next}, nil
	case PageCursor:
		raw, ok := fieldAt(body, e.CursorField)
		if !ok || n == 0 {
			return nil, nil
		}
		var c string
		if json.Unmarshal(raw, &c) != nil {
			if id, ok := idString(raw); ok {
				c = id
			} else if !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
				return nil, fmt.Errorf("the answer's %s is %s, not a cursor (a string or a number)", e.CursorField, clip(string(raw)))
			}
		}
		if c == "" || c == req.cursor {
			return nil, nil
		}
		return &request{cursor: c}, nil
	}
	return nil, nil
}

var linkPart = regexp.MustCompile(`<([^>]*)>((?:\s*;\s*[^;,]*)*)`)
var relNext = regexp.MustCompile(`(?i);\s*rel\s*=\s*"?(?:[^";,]*\s)?next(?:\s[^";,]*)?"?\s*(?:;|$)`)

// nextLink is the URL of the Link header's rel="next" (RFC 8288), or "".
func nextLink(h http.Header) string {
	for _, v := range h.Values("Link") {
		for _, m := range linkPart.FindAllStringSubmatch(v, -1) {
			if relNext.MatchString(m[2] + ";") {
				return m[1]
			}
		}
	}
	return ""
}

// readRecord reads one record: its key, when it changed, whether it is deleted.
func readRecord(raw json.RawMessage, e *Source) (record, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return record{}, errors.New("is not a JSON object")
	}
	r := record{raw: raw}
	var ok bool
	if r.key, ok = idString(fields[e.KeyField]); !ok {
		return record{}, fmt.Errorf("has no %q field with a string or number (key_field)", e.KeyField)
	}
	changed, ok := fieldAt(raw, e.ChangedField)
	if !ok {
		return record{}, fmt.Errorf("(record %q) has no %q field (changed_field)", r.key, e.ChangedField)
	}
	var err error
	if r.since, r.at, err = changedAt(changed, e.ChangedFormat); err != nil {
		return record{}, fmt.Errorf("(record %q) has a %s that %v", r.key, e.ChangedField, err)
	}
	if e.DeletedField != "" {
		if flag, ok := fieldAt(raw, e.DeletedField); ok {
			if r.deleted, err = deletedFlag(flag); err != nil {
				return record{}, fmt.Errorf("(record %q) has a %s that %v (deleted_field)", r.key, e.DeletedField, err)
			}
		}
	}
	return r, nil
}

// changedAt reads a changed field in format: the text to send back as since_param, and
// the time in Unix microseconds.
func changedAt(raw json.RawMessage, format string) (string, int64, error) {
	var s string
	isString := json.Unmarshal(raw, &s) == nil
	text := strings.TrimSpace(string(raw))
	if format == ChangedRFC3339 {
		if !isString {
			hint := "set changed_format to unix (seconds) or unix_ms (milliseconds)"
			if _, _, err := unixMicros(text, 1); err != nil {
				hint = "it must be a string such as 2026-03-01T12:00:00.000Z"
			} else if len(strings.TrimLeft(text, "-")) >= 12 {
				hint = "set changed_format to unix_ms, as it looks like milliseconds"
			}
			return "", 0, fmt.Errorf("is %s, not an RFC 3339 time (changed_format rfc3339): %s", clip(text), hint)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return "", 0, fmt.Errorf("is %q, not an RFC 3339 time such as 2026-03-01T12:00:00.000Z (changed_format rfc3339)", clip(s))
		}
		return s, t.UnixMicro(), nil
	}
	if isString {
		text = strings.TrimSpace(s)
	}
	scale := int64(1_000_000)
	if format == ChangedUnixMS {
		scale = 1000
	}
	_, us, err := unixMicros(text, scale)
	if err != nil {
		hint := ""
		if _, perr := time.Parse(time.RFC3339Nano, text); perr == nil {
			hint = "; set changed_format to rfc3339"
		}
		return "", 0, fmt.Errorf("is %s, not a number of %s since 1970 (changed_format %s)%s", clip(string(raw)), map[int64]string{1000: "milliseconds", 1_000_000: "seconds"}[scale], format, hint)
	}
	return text, us, nil
}

// unixMicros reads a plain decimal number of units (scale microseconds each), exactly.
func unixMicros(text string, scale int64) (string, int64, error) {
	whole, frac, _ := strings.Cut(text, ".")
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || n < 0 || strings.HasPrefix(whole, "+") || strings.Trim(frac, "0123456789") != "" {
		return "", 0, errors.New("not a plain number")
	}
	if n > math.MaxInt64/scale-1 {
		return "", 0, errors.New("too large")
	}
	us := n * scale
	digits := len(strconv.FormatInt(scale, 10)) - 1
	if len(frac) > digits {
		frac = frac[:digits]
	}
	if frac != "" {
		f, _ := strconv.ParseInt(frac+strings.Repeat("0", digits-len(frac)), 10, 64)
		us += f
	}
	return text, us, nil
}

// deletedFlag reads a deleted field: true, a non-empty string (a deleted-at time) or a
// number other than 0 mark the record deleted; false, null, "" and 0 do not.
func deletedFlag(raw json.RawMessage) (bool, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return false, err
	}
	switch v := v.(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case string:
		return v != "", nil
	case float64:
		return v != 0, nil
	}
	return false, fmt.Errorf("is %s, not true or false, or a deleted-at time", clip(string(raw)))
}

// fieldAt returns the field at path (names joined by '.') of a JSON object.
func fieldAt(raw json.RawMessage, path string) (json.RawMessage, bool) {
	for name := range strings.SplitSeq(path, ".") {
		var fields map[string]json.RawMessage
		if json.Unmarshal(raw, &fields) != nil {
			return nil, false
		}
		var ok bool
		if raw, ok = fields[name]; !ok {
			return nil, false
		}
	}
	return raw, true
}

// Check implements connector.Source: it asks every polled entity for its first record,
// which proves that the API answers at each path, takes the credentials and answers records
// the settings can read, and keeps nothing.
func (p *PolledSource) Check(ctx context.Context) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(p.polled)) {
		e := *p.polled[name]
		e.PageSize = 1
		if _, err := p.fetch(ctx, name, &e, position{}, first(&e)); err != nil {
			errs = append(errs, fmt.Errorf("entity %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func first(e *Source) *request {
	r, _ := firstRequest(e, 0, false)
	return r
}

// Close closes the source's idle connections.
func (p *PolledSource) Close() error {
	p.closeIdle()
	return nil
}
