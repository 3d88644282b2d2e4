package recipe_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/connector/connectortest"
	"github.com/syncline/syncline/pkg/recipe"
)

// TestOrderRulesAgainstModel runs random histories of orders through the order recipe and
// an ERP in memory, and checks after every step what a plain model of the rules says:
//
//   - an order is in the target once, from its first delivery whose SKUs are all there,
//     whatever is delivered again, at once, or after a fault between its customer and it;
//   - an order with a SKU the target lacks fails as unknown_product naming exactly the
//     missing SKUs, and writes nothing: no order, and no customer of its own;
//   - there is one customer per e-mail (in any case), made by the first order of the e-mail
//     that got past its SKU check, or by hand, and each order refers to it;
//   - pushes that run at once (partitions), with disjoint orders of shared customers, make
//     no second customer.
//
// Each key's order is fixed (a source order does not change here: the dedup stage, not the
// recipe, decides about changes of known orders).
func TestOrderRulesAgainstModel(t *testing.T) {
	seed := *modelSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (go test ./pkg/recipe -run TestOrderRulesAgainstModel -recipe.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for c := range *modelCases / 3 {
		h := newOrderHistory(t, rng)
		for step := range 20 {
			if !h.step() {
				t.Fatalf("case %d, step %d: see above; seed %d", c, step, seed)
			}
		}
	}
}

type orderHistory struct {
	t      *testing.T
	rng    *rand.Rand
	shop   connectortest.Multi
	target *faulty
	flow   recipe.Flow
	// orders are the source's orders: key -> e-mail and SKUs.
	orders map[string]sourceOrder
	// Model: the SKUs the target has, the e-mails (lower case) it has a customer of, and
	// the orders in it.
	skus      map[string]bool
	customers map[string]bool
	inTarget  map[string]bool
	last      []string
	log       []string
}

type sourceOrder struct {
	email string
	skus  []string
}

var (
	orderKeys   = []string{"o0", "o1", "o2", "o3", "o4", "o5"}
	orderEmails = []string{"ann@example.com", "Ann@Example.com", "bob@example.com", "cy@example.com"}
	orderSKUs   = []string{"A", "B", "C", "X", "Y"}
)

func newOrderHistory(t *testing.T, rng *rand.Rand) *orderHistory {
	h := &orderHistory{t: t, rng: rng, orders: map[string]sourceOrder{},
		skus: map[string]bool{}, customers: map[string]bool{}, inTarget: map[string]bool{}}
	h.shop = newShop(t, "A", "B", "C")
	for _, s := range []string{"A", "B", "C"} {
		h.skus[s] = true
	}
	h.target = &faulty{Target: h.shop, entity: "order"}
	h.flow = orderFlow("order", recipe.Document{State: "confirmed"})
	for _, k := range orderKeys {
		o := sourceOrder{email: orderEmails[rng.IntN(len(orderEmails))]}
		for range 1 + rng.IntN(3) {
			if s := orderSKUs[rng.IntN(len(orderSKUs))]; !slices.Contains(o.skus, s) {
				o.skus = append(o.skus, s)
			}
		}
		h.orders[k] = o
	}
	return h
}

func (h *orderHistory) record(key string) connector.Record {
	o := h.orders[key]
	return order(key, o.email, "", o.skus...)
}

func (h *orderHistory) pickKeys(from []string) []string {
	var out []string
	for range 1 + h.rng.IntN(3) {
		if k := from[h.rng.IntN(len(from))]; !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func (h *orderHistory) step() bool {
	ctx := context.Background()
	switch n := h.rng.IntN(10); {
	case n < 4:
		h.push(ctx, h.pickKeys(orderKeys), false)
	case n == 4 && h.last != nil:
		h.log = append(h.log, "the last push again")
		h.push(ctx, h.last, false)
	case n == 5:
		h.push(ctx, h.pickKeys(orderKeys), true)
	case n == 6:
		// Two partitions at once: disjoint orders, maybe of one customer.
		a, b := h.pickKeys(orderKeys[:3]), h.pickKeys(orderKeys[3:])
		h.log = append(h.log, fmt.Sprintf("at once: %v and %v", a, b))
		var wg sync.WaitGroup
		var ga, gb []recipe.Outcome
		var ea, eb error
		wg.Go(func() { ga, ea = recipe.Run(ctx, h.target, h.flow, h.records(a)) })
		wg.Go(func() { gb, eb = recipe.Run(ctx, h.target, h.flow, h.records(b)) })
		wg.Wait()
		if ea != nil || eb != nil {
			h.t.Errorf("pushes at once: %v, %v", ea, eb)
			return false
		}
		h.expect(a, ga)
		h.expect(b, gb)
	case n == 7:
		sku := h.pick("X", "Y")
		if !h.skus[sku] {
			h.log = append(h.log, "product "+sku+" is made in the target")
			write(h.t, h.shop, "product", connector.Write{Op: connector.WriteCreate, Key: "p-" + sku, Payload: []byte(fmt.Sprintf(`{"sku":%q}`, sku))})
			h.skus[sku] = true
		}
	default:
		email := h.pick(orderEmails...)
		if !h.customers[strings.ToLower(email)] {
			h.log = append(h.log, "customer "+email+" is made by hand")
			write(h.t, h.shop, "customer", connector.Write{Op: connector.WriteCreate, Key: "hand-" + email, Payload: []byte(fmt.Sprintf(`{"email":%q,"name":"By hand"}`, email))})
			h.customers[strings.ToLower(email)] = true
		}
	}
	return h.check()
}

func (h *orderHistory) pick(vs ...string) string { return vs[h.rng.IntN(len(vs))] }

func (h *orderHistory) records(keys []string) []connector.Record {
	out := make([]connector.Record, len(keys))
	for i, k := range keys {
		out[i] = h.record(k)
	}
	return out
}

// push runs the orders of keys; fault fails the push at its orders' write, after the
// customers were made.
func (h *orderHistory) push(ctx context.Context, keys []string, fault bool) {
	h.last = keys
	h.log = append(h.log, fmt.Sprintf("push %v fault=%v", keys, fault))
	if fault {
		h.target.fails.Store(1)
	}
	got, err := recipe.Run(ctx, h.target, h.flow, h.records(keys))
	if fault {
		// The fault was spent when the push came to write its orders.
		writes := h.target.fails.Load() < 1
		h.target.fails.Store(0)
		// The customers of the orders that passed their SKU check were made before
		// the fault, unless no order got as far as a write.
		for _, k := range keys {
			if !h.inTarget[k] && h.hasSKUs(k) {
				h.customers[strings.ToLower(h.orders[k].email)] = true
			}
		}
		if writes && err == nil {
			h.t.Errorf("push %v: the fault at the orders' write did not fail it", keys)
		}
		if writes {
			return
		}
		// No order needed a write (all in the target or failed): the push went on.
	}
	if err != nil {
		h.t.Errorf("push %v: %v", keys, err)
		return
	}
	h.expect(keys, got)
}

func (h *orderHistory) hasSKUs(key string) bool {
	for _, s := range h.orders[key].skus {
		if !h.skus[s] {
			return false
		}
	}
	return true
}

// expect checks the outcomes of a push of keys against the model, and moves the model on.
func (h *orderHistory) expect(keys []string, got []recipe.Outcome) {
	for i, k := range keys {
		o := h.orders[k]
		var missing []string
		for _, s := range o.skus {
			if !h.skus[s] {
				missing = append(missing, s)
			}
		}
		slices.Sort(missing)
		switch {
		case h.inTarget[k]:
			// Delivered again: found as written, nothing new.
			if got[i].Action != recipe.Created {
				h.t.Errorf("order %s again: %s (%s), want created (found as written)", k, got[i].Action, got[i].Reason)
			}
		case len(missing) > 0:
			if got[i].Code != recipe.CodeUnknownProduct || !strings.Contains(got[i].Reason, "SKU "+strings.Join(missing, ", ")+",") {
				h.t.Errorf("order %s with missing %v: %s %s (%s)", k, missing, got[i].Action, got[i].Code, got[i].Reason)
			}
		default:
			if got[i].Action != recipe.Created {
				h.t.Errorf("order %s: %s (%s), want created", k, got[i].Action, got[i].Reason)
			}
			h.inTarget[k] = true
			h.customers[strings.ToLower(o.email)] = true
		}
	}
}

// check compares the ERP with the model.
func (h *orderHistory) check() bool {
	ok := !h.t.Failed()
	byEmail := map[string][]string{}
	for _, c := range customersOf(h.shop) {
		byEmail[strings.ToLower(c["email"].(string))] = append(byEmail[strings.ToLower(c["email"].(string))], fmt.Sprint(c))
	}
	for email, cs := range byEmail {
		if len(cs) > 1 {
			h.t.Errorf("%d customers with e-mail %s: %v", len(cs), email, cs)
			ok = false
		}
		if !h.customers[email] {
			h.t.Errorf("a customer %s the model does not have", email)
			ok = false
		}
	}
	for email := range h.customers {
		if len(byEmail[email]) == 0 {
			h.t.Errorf("no customer %s, which the model has", email)
			ok = false
		}
	}
	for _, k := range orderKeys {
		recs := h.shop["order"].Records(k)
		if len(recs) != map[bool]int{true: 1}[h.inTarget[k]] {
			h.t.Errorf("order %s: %d in the target, the model says in=%v", k, len(recs), h.inTarget[k])
			ok = false
			continue
		}
		if len(recs) == 1 {
			refs, state := h.shop["order"].Document(k)
			found, _ := h.shop.Find(context.Background(), "customer", connector.FieldEmail, []string{h.orders[k].email})
			if state != "confirmed" || len(found) != 1 || refs[connector.RefCustomer] != found[0].ID {
				h.t.Errorf("order %s written with refs %v state %q, want customer %v", k, refs, state, found)
				ok = false
			}
		}
	}
	if !ok {
		h.t.Logf("orders %v\nhistory:\n  %s", h.orders, strings.Join(h.log, "\n  "))
	}
	return ok
}
