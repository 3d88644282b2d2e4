package tryton

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syncline/syncline/pkg/connector"
)

// maxResponseBytes bounds what the client reads of one answer. The connector pages its
// searches and reads few fields, so a real answer stays far below it; anything larger is a
// misconfigured URL (a download, a proxy's page) and must not be held in memory.
const maxResponseBytes = 8 << 20

// loginPause is how long the client refuses to try a password Tryton refused again: Tryton
// locks a login name after 6 failed attempts within 5 minutes, so a flow's probes (or
// retries) must not spend them; one attempt a minute stays below the limit.
const loginPause = time.Minute

// loginLockout is how long Tryton refuses a login name after too many failed attempts
// (its [session] timeout, 300 s by default): retrying sooner extends the lock.
const loginLockout = 5 * time.Minute

// client speaks Tryton's JSON-RPC to one database as one user. It logs in once, keeps the
// session, and logs in again once when the session is refused (expired or deleted by a
// failed fresh-session check). Logins send a device cookie, which Tryton hands out after
// the first login, so that someone else's failed attempts for the same login name do not
// lock the connector out. It is safe for concurrent use.
type client struct {
	http     *http.Client
	url      string // the database's URL: <url>/<database>/
	base     string // the server's URL, for messages
	database string
	user     string
	password string

	ids atomic.Int64

	mu      sync.Mutex // guards session, cookie and the refused login
	session string     // the Authorization header value; empty before the first login
	uid     int64      // the user's id, from the login
	cookie  string
	// refused is the error of a login Tryton refused (HTTP 401), returned again without a
	// new attempt until refusedUntil.
	refused      error
	refusedUntil time.Time
}

// RPCError is Tryton's refusal of one call: a UserError (a record it will not take: a
// constraint, a domain, a missing value) or any other exception it reports. Message is
// Tryton's own text, which names the field or rule that failed.
type RPCError struct {
	Method string
	// Kind is "UserError", "UserWarning" or "" for other exceptions.
	Kind    string
	Message string
	// Warning is a UserWarning's name: a res.user.warning record of that name lets the
	// call pass once.
	Warning string
}

func (e *RPCError) Error() string {
	if e.Kind == "" {
		return fmt.Sprintf("Tryton refused %s: %s", e.Method, e.Message)
	}
	return fmt.Sprintf("Tryton refused %s (%s): %s", e.Method, e.Kind, e.Message)
}

// userError reports whether err is Tryton's refusal of the data sent (a record's own
// problem), as opposed to an outage or a protocol problem.
func userError(err error) bool {
	var re *RPCError
	return errors.As(err, &re) && (re.Kind == "UserError" || re.Kind == "UserWarning")
}

// errSessionRefused is a 401 on a call made with a session: log in again.
var errSessionRefused = errors.New("session refused")

func newClient(rt http.RoundTripper, base, database, user, password string, timeout time.Duration) *client {
	base = strings.TrimRight(base, "/")
	return &client{
		http:     &http.Client{Transport: rt, Timeout: timeout},
		url:      base + "/" + database + "/",
		base:     base,
		database: database,
		user:     user,
		password: password,
	}
}

// call runs method with params (the context dict last, as Tryton wants it) and decodes the
// result into out (nil discards it). ctx bounds the call, including a login it needs.
func (c *client) call(ctx context.Context, out any, method string, params ...any) error {
	session, err := c.login(ctx, "")
	if err != nil {
		return err
	}
	err = c.post(ctx, session, out, method, params)
	if errors.Is(err, errSessionRefused) {
		if session, err = c.login(ctx, session); err != nil {
			return err
		}
		err = c.post(ctx, session, out, method, params)
		if errors.Is(err, errSessionRefused) {
			return fmt.Errorf("calling %s on Tryton at %s: the new session was refused too (HTTP 401); check that user %q may use database %q", method, c.base, c.user, c.database)
		}
	}
	return err
}

// login returns the session to use. stale is the session a call just saw refused: unless
// another goroutine has replaced it meanwhile, it is dropped and a new one obtained.
func (c *client) login(ctx context.Context, stale string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session != "" && c.session != stale {
		return c.session, nil
	}
	c.session = ""
	if c.refused != nil && time.Now().Before(c.refusedUntil) {
		return "", c.refused
	}
	pw := map[string]any{"password": c.password}
	if c.cookie != "" {
		pw["device_cookie"] = c.cookie
	}
	var res []json.RawMessage
	if err := c.post(ctx, "", &res, "common.db.login", []any{c.user, pw, "en"}); err != nil {
		if errors.Is(err, errSessionRefused) {
			c.refused = fmt.Errorf("logging in to Tryton at %s, database %q, as %q: the password is wrong or the user does not exist (HTTP 401); fix the endpoint's credentials (the next attempt waits %s: after 6 failed attempts Tryton locks the login for 5 minutes)", c.base, c.database, c.user, loginPause)
			c.refusedUntil = time.Now().Add(loginPause)
			return "", c.refused
		}
		return "", fmt.Errorf("logging in to Tryton at %s, database %q, as %q: %w", c.base, c.database, c.user, err)
	}
	var uid int64
	var key string
	if len(res) != 2 || json.Unmarshal(res[0], &uid) != nil || json.Unmarshal(res[1], &key) != nil {
		return "", fmt.Errorf("logging in to Tryton at %s, database %q, as %q: the answer is not [user id, session]; is the URL a Tryton 6.0 server?", c.base, c.database, c.user)
	}
	c.refused = nil
	c.uid = uid
	c.session = "Session " + base64.StdEncoding.EncodeToString([]byte(c.user+":"+strconv.FormatInt(uid, 10)+":"+key))
	if c.cookie == "" {
		var cookie string
		if err := c.post(ctx, c.session, &cookie, "model.res.user.device.renew", []any{nil, map[string]any{}}); err == nil {
			c.cookie = cookie
		}
		// Without a cookie the connector still works; it is only less shielded from
		// lockouts caused by others, so a failure here is not the call's failure.
	}
	return c.session, nil
}

// userID returns the id of the user the client logs in as, logging in if it has not yet.
func (c *client) userID(ctx context.Context) (int64, error) {
	if _, err := c.login(ctx, ""); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.uid, nil
}

// close ends the session on the server, so that it does not linger for 30 days.
func (c *client) close(ctx context.Context) error {
	c.mu.Lock()
	session := c.session
	c.session = ""
	c.mu.Unlock()
	if session == "" {
		return nil
	}
	err := c.post(ctx, session, nil, "common.db.logout", []any{})
	if errors.Is(err, errSessionRefused) {
		return nil // already gone
	}
	return err
}

type rpcResponse struct {
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// post sends one JSON-RPC request and classifies the answer: a Tryton refusal is an
// *RPCError, a 401 is errSessionRefused, a 429 or 503 or a locked database is a
// *connector.ThrottledError, and anything that is not Tryton's JSON-RPC answer says what
// came back instead.
func (c *client) post(ctx context.Context, session string, out any, method string, params []any) error {
	body, err := json.Marshal(map[string]any{"id": c.ids.Add(1), "method": method, "params": params})
	if err != nil {
		return fmt.Errorf("encoding the call %s: %w", method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("calling %s on Tryton at %s: %w", method, c.base, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if session != "" {
		req.Header.Set("Authorization", session)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("calling %s on Tryton at %s: %w", method, c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("reading Tryton's answer to %s from %s: %w", method, c.base, err)
	}
	if len(data) > maxResponseBytes {
		return fmt.Errorf("the answer of Tryton to %s from %s is larger than %d MiB; is the endpoint's url the Tryton server?", method, c.base, maxResponseBytes>>20)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return errSessionRefused
	case http.StatusTooManyRequests:
		wait := retryAfter(resp.Header)
		if method == "common.db.login" && wait == 0 {
			wait = loginLockout
		}
		return &connector.ThrottledError{RetryAfter: wait, Err: fmt.Errorf("the Tryton server at %s refused %s with HTTP 429 (too many requests; for a login: too many failed attempts for user %q)", c.base, method, c.user)}
	case http.StatusServiceUnavailable:
		return &connector.ThrottledError{RetryAfter: retryAfter(resp.Header), Err: fmt.Errorf("the Tryton server at %s answered %s with HTTP 503", c.base, method)}
	case http.StatusForbidden:
		return fmt.Errorf("the Tryton server at %s refused %s with HTTP 403: the method does not exist or the user may not call it", c.base, method)
	case http.StatusNotFound:
		return fmt.Errorf("the Tryton server at %s answered %s with HTTP 404: check the endpoint's url and database %q", c.base, method, c.database)
	default:
		return fmt.Errorf("the Tryton server at %s answered %s with HTTP %d%s", c.base, method, resp.StatusCode, excerpt(data))
	}
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct != "application/json" {
		return fmt.Errorf("the Tryton server at %s answered %s with %q, not JSON-RPC%s: is the endpoint's url the Tryton server and database %q right?", c.base, method, resp.Header.Get("Content-Type"), excerpt(data), c.database)
	}
	var r rpcResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("decoding Tryton's answer to %s from %s: %w", method, c.base, err)
	}
	if len(r.Error) > 0 && string(r.Error) != "null" {
		return rpcError(method, r.Error)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(r.Result, out); err != nil {
		return fmt.Errorf("decoding the result of %s from %s: %w", method, c.base, err)
	}
	return nil
}

// rpcError decodes Tryton's error member: ["UserError", [message, description, domain]],
// ["UserWarning", [name, message, description]] or [str(exception), ""].
func rpcError(method string, raw json.RawMessage) error {
	var parts []json.RawMessage
	if json.Unmarshal(raw, &parts) != nil || len(parts) == 0 {
		return &RPCError{Method: method, Message: string(raw)}
	}
	var head string
	_ = json.Unmarshal(parts[0], &head)
	var args []json.RawMessage
	if len(parts) > 1 {
		_ = json.Unmarshal(parts[1], &args)
	}
	text := func(i int) string {
		var s string
		if i < len(args) {
			_ = json.Unmarshal(args[i], &s)
		}
		return s
	}
	switch head {
	case "UserError":
		msg := text(0)
		if d := text(1); d != "" {
			msg += " " + d
		}
		return &RPCError{Method: method, Kind: head, Message: msg}
	case "UserWarning":
		return &RPCError{Method: method, Kind: head, Message: text(1), Warning: text(0)}
	case "database is locked":
		// SQLite gave up waiting for another writer; the transaction was rolled back, so
		// the call can be repeated once the load has passed.
		return &connector.ThrottledError{Err: fmt.Errorf("the Tryton server refused %s: its database is locked (another writer held it too long)", method)}
	}
	return &RPCError{Method: method, Message: head}
}

func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// excerpt is the start of a non-JSON answer, for messages: enough to recognise a proxy's or
// a web server's page, never more than a line.
func excerpt(data []byte) string {
	s := strings.Join(strings.Fields(string(data)), " ")
	if s == "" {
		return ""
	}
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return fmt.Sprintf(" (%q)", s)
}
