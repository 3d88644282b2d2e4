package rest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/syncline/syncline/pkg/connector"
)

// client sends the requests of one endpoint, target or source: every connection through the
// egress policy's dialer, every request through the endpoint's budget, each with the
// endpoint's credentials and within settings.timeout.
type client struct {
	s         Settings
	http      *http.Client
	transport *http.Transport
}

// newClient returns a client for the API of s, whose settings parse checked, and env, whose
// Egress is set. A nil env.Budget gets one made from s.
func newClient(s Settings, env connector.Env) *client {
	budget := env.Budget
	if budget == nil {
		budget = connector.NewBudget(s.Budget)
	}
	transport := &http.Transport{
		// A proxy from the environment would be dialled instead of the API, past the policy.
		Proxy:               nil,
		DialContext:         env.Egress.Dialer(env.Tenant, "").DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
		TLSHandshakeTimeout: s.Timeout,
	}
	return &client{
		s:         s,
		transport: transport,
		http: &http.Client{
			Transport: budget.Transport(transport),
			// A redirect is a wrong base URL, and following one would turn a POST into a GET
			// and could carry the credentials elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

func (c *client) closeIdle() { c.transport.CloseIdleConnections() }

// send makes one request to the path p under the base URL and reads its answer, up to
// maxAnswer. A request that gets no answer (a timeout, a broken connection) is an error; so is
// an answer larger than maxAnswer.
func (c *client) send(ctx context.Context, method, p string, query url.Values, body []byte) (*answer, error) {
	u := c.s.BaseURL.String() + p
	what := method + " " + p
	if len(query) > 0 {
		q := query.Encode()
		u += "?" + q
		what += "?" + q
	}
	return c.do(ctx, method, u, what, body, maxAnswer, tooLarge)
}

// do makes one request to the URL u within settings.timeout and reads its answer, up to limit
// bytes; large says what a larger answer means. what names the request in messages.
func (c *client) do(ctx context.Context, method, u, what string, body []byte, limit int64, large func(what string, status int, size string) error) (*answer, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.s.Timeout)
	defer cancel()
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, reader)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch c.s.Auth {
	case AuthBearer:
		req.Header.Set("Authorization", "Bearer "+c.s.Token)
	case AuthBasic:
		req.SetBasicAuth(c.s.User, c.s.Password)
	case AuthAPIKey:
		req.Header.Set(c.s.APIKeyHeader, c.s.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.sendError(parent, what, err)
	}
	defer resp.Body.Close()
	a := &answer{what: what, status: resp.StatusCode, header: resp.Header}
	if resp.ContentLength > limit {
		return nil, large(what, resp.StatusCode, strconv.FormatInt(resp.ContentLength, 10)+" bytes")
	}
	a.body, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, c.sendError(parent, what+": reading the answer", err)
	}
	if int64(len(a.body)) > limit {
		return nil, large(what, resp.StatusCode, "more")
	}
	return a, nil
}

func tooLarge(what string, status int, size string) error {
	return fmt.Errorf("%s answered %d with %s, over the 1 MiB the rest target reads: a lookup answering this much may be listing the whole collection because the API ignores its query parameter (check the entity's lookup settings)", what, status, size)
}

// sendError says why a request got no answer: the caller gave up, the budget holds it past
// the timeout, the timeout passed, or the connection failed.
func (c *client) sendError(parent context.Context, what string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var te *connector.ThrottledError
	switch {
	case parent.Err() != nil, errors.As(err, &te):
		return fmt.Errorf("%s: %w", what, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: no answer within %s (settings.timeout): %w", what, c.s.Timeout, err)
	}
	return fmt.Errorf("%s on %s: %w", what, c.s.BaseURL.Host, err)
}
