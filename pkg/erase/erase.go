// Package erase carries the request to erase a tenant's data from the
// services that own it (DESIGN section 5: each service owns its tables and
// reaches no other's). The control plane asks over NATS; one replica of
// each service answers (a queue group per service) with what it removed,
// and the control plane deletes the tenant only when every service has.
package erase

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Subject is where erase requests go.
const Subject = "syncline.erase.tenant"

type request struct {
	Tenant string `json:"tenant"`
}

type reply struct {
	Service string           `json:"service"`
	Removed map[string]int64 `json:"removed,omitempty"`
	Error   string           `json:"error,omitempty"`
}

// Func erases a tenant's data from one service's store and counts what it
// removed, by what ("ledger entries"). It must be idempotent: a tenant
// already erased removes nothing and is no error.
type Func func(ctx context.Context, tenant string) (map[string]int64, error)

// Timeout bounds one service's erase.
const Timeout = 5 * time.Minute

// Responder answers erase requests as one service while it runs; it is a
// lifecycle part. Replicas of one service share a queue group, so one of
// them answers each request.
type Responder struct {
	nc      *nats.Conn
	service string
	fn      Func
	sub     *nats.Subscription
}

// NewResponder returns a responder for service (e.g. "dedup").
func NewResponder(nc *nats.Conn, service string, fn Func) *Responder {
	return &Responder{nc: nc, service: service, fn: fn}
}

// Start subscribes.
func (r *Responder) Start(context.Context) error {
	sub, err := serve(r.nc, r.service, Timeout, r.fn)
	r.sub = sub
	return err
}

// Stop unsubscribes; an erase in progress finishes.
func (r *Responder) Stop(context.Context) error {
	if r.sub == nil || !r.sub.IsValid() {
		return nil
	}
	return r.sub.Unsubscribe()
}

func serve(nc *nats.Conn, service string, timeout time.Duration, fn Func) (*nats.Subscription, error) {
	sub, err := nc.QueueSubscribe(Subject, service, func(m *nats.Msg) {
		var req request
		out := reply{Service: service}
		if err := json.Unmarshal(m.Data, &req); err != nil || req.Tenant == "" {
			out.Error = "the erase request does not name a tenant"
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			removed, err := fn(ctx, req.Tenant)
			cancel()
			out.Removed = removed
			if err != nil {
				out.Error = err.Error()
			}
		}
		data, _ := json.Marshal(out)
		_ = m.Respond(data)
	})
	if err != nil {
		return nil, fmt.Errorf("answering erase requests as %s: %w", service, err)
	}
	return sub, nil
}

// Tenant asks every service in services to erase tenant and waits, within
// ctx, until each has answered. It returns what they removed; an error
// names every service that failed or did not answer, and the caller must
// not consider the tenant erased (asking again is safe).
func Tenant(ctx context.Context, nc *nats.Conn, tenant string, services []string) (map[string]int64, error) {
	// A service that is down never answers: bound the wait by what an
	// erase may take, whatever the caller's context allows.
	ctx, cancel := context.WithTimeout(ctx, Timeout+time.Minute)
	defer cancel()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("erasing tenant %s: %w", tenant, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	data, _ := json.Marshal(request{Tenant: tenant})
	if err := nc.PublishRequest(Subject, inbox, data); err != nil {
		return nil, fmt.Errorf("erasing tenant %s: %w", tenant, err)
	}
	removed := map[string]int64{}
	waiting := slices.Clone(services)
	var failed []string
	for len(waiting) > 0 {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			break
		}
		var r reply
		if json.Unmarshal(m.Data, &r) != nil {
			continue
		}
		i := slices.Index(waiting, r.Service)
		if i < 0 {
			continue
		}
		waiting = slices.Delete(waiting, i, i+1)
		for k, v := range r.Removed {
			removed[k] += v
		}
		if r.Error != "" {
			failed = append(failed, fmt.Sprintf("%s failed: %s", r.Service, r.Error))
		}
	}
	sort.Strings(waiting)
	for _, s := range waiting {
		failed = append(failed, s+" did not answer (is it running?)")
	}
	if len(failed) > 0 {
		return removed, fmt.Errorf("erasing tenant %s: %s; nothing is lost by asking again: retry the delete", tenant, strings.Join(failed, "; "))
	}
	return removed, nil
}
