package tryton

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/syncline/syncline/pkg/connector"
)

// stock is the canonical stock level record. Reserved and available are the source's
// figures: Tryton reserves for its own shipments and computes its available quantity
// itself, so only on_hand is written.
type stock struct {
	SKU       string   `json:"sku"`
	OnHand    *float64 `json:"on_hand"`
	Reserved  *float64 `json:"reserved"`
	Available *float64 `json:"available"`
	Warehouse string   `json:"warehouse"`
}

type stockVariant struct {
	ID         int64  `json:"id"`
	Code       string `json:"code"`
	Type       string `json:"type"`
	Consumable flag   `json:"consumable"`
}

// storage returns the storage zone of the warehouse with code (settings.warehouse when
// empty): where on-hand stock lives and inventories count.
func (t *Target) storage(ctx context.Context, code string) (int64, error) {
	if code == "" {
		code = t.settings.Warehouse
	}
	return t.remember("storage\x00"+code, func() (int64, error) {
		type row struct {
			Storage many2one `json:"storage_location"`
		}
		rows, err := searchRead[row](ctx, t, "stock.location", []any{[]any{"type", "=", "warehouse"}, []any{"code", "=", code}}, []string{"storage_location"}, nil)
		if err != nil {
			return 0, err
		}
		if len(rows) == 0 || rows[0].Storage == nil {
			return 0, refuse("Tryton has no warehouse with the code %q (or it has no storage zone)", code)
		}
		return *rows[0].Storage, nil
	})
}

// writeStock sets a variant's on-hand quantity the way Tryton records it: an inventory of
// the warehouse's storage zone, created and confirmed back to back (Tryton books the
// difference to the quantity it expected, which it freezes when the inventory is written).
func (t *Target) writeStock(ctx context.Context, w connector.Write) (string, error) {
	if w.Op == connector.WriteDelete {
		return "", refuse("a stock level cannot be deleted; send on_hand 0 instead")
	}
	var rec stock
	if _, err := decodePayload(w.Payload, &rec); err != nil {
		return "", err
	}
	if !t.settings.ManageStock {
		return "", skipped("this Tryton endpoint does not manage stock (settings.manage_stock is false), so the level of sku %q is not written", rec.SKU)
	}
	if rec.SKU == "" || rec.OnHand == nil {
		return "", refuse("a stock level needs a sku and on_hand")
	}
	if *rec.OnHand < 0 {
		return "", refuse("on_hand %v is negative; Tryton counts stock from zero up", *rec.OnHand)
	}
	rows, err := searchRead[stockVariant](ctx, t, "product.product", []any{[]any{"code", "=", rec.SKU}}, []string{"code", "type", "consumable"}, nil)
	if err != nil {
		return "", err
	}
	if len(rows) == 0 {
		return "", refuse("Tryton has no active product with the sku %q; sync the product first", rec.SKU)
	}
	v := rows[0]
	if w.Op == connector.WriteUpdate {
		id, err := parseID(w.ID)
		if err != nil {
			return "", err
		}
		if id != v.ID {
			return "", refuse("the stock level's target id %d is not the product with the sku %q (%d)", id, rec.SKU, v.ID)
		}
	}
	switch {
	case v.Type != "goods":
		return "", skipped("product %q is a %s: Tryton keeps no stock of it", rec.SKU, v.Type)
	case bool(v.Consumable):
		return "", skipped("product %q is a consumable: Tryton does not manage its stock", rec.SKU)
	}
	storage, err := t.storage(ctx, rec.Warehouse)
	if err != nil {
		return "", err
	}
	t.seq.Lock() // an inventory's number comes from a sequence
	defer t.seq.Unlock()
	var qty []struct {
		Quantity float64 `json:"quantity"`
	}
	if err := t.c.call(ctx, &qty, "model.product.product.read", []int64{v.ID}, []string{"quantity"}, t.stockContext(storage, false)); err != nil {
		return "", err
	}
	if len(qty) != 1 || math.Abs(qty[0].Quantity-*rec.OnHand) > 1e-9 {
		inv, err := t.create(ctx, "stock.inventory", map[string]any{
			"location": storage, "company": t.company,
			"lines": []any{[]any{"create", []map[string]any{{"product": v.ID, "quantity": *rec.OnHand}}}},
		})
		if err != nil {
			return "", err
		}
		if err := t.c.call(ctx, nil, "model.stock.inventory.confirm", []int64{inv}, t.ctx); err != nil {
			return "", err
		}
	}
	if err := t.addStockRef(ctx, v.ID, w.Key); err != nil {
		return "", err
	}
	return idString(v.ID), nil
}

// addStockRef records key as the external reference of the variant's stock level.
func (t *Target) addStockRef(ctx context.Context, variant int64, key string) error {
	ids, err := t.searchIDs(ctx, "product.identifier", []any{[]any{"product", "=", variant}, []any{"code", "=", stockRefPrefix + key}})
	if err != nil || len(ids) > 0 {
		return err
	}
	_, err = t.create(ctx, "product.identifier", map[string]any{"product": variant, "type": nil, "code": stockRefPrefix + key})
	return err
}

// stockContext is the context that makes Tryton compute quantities in a location; assign
// subtracts the goods reserved for shipments.
func (t *Target) stockContext(location int64, assign bool) map[string]any {
	c := map[string]any{"company": t.company, "locations": []int64{location}}
	if assign {
		c["stock_assign"] = true
	}
	return c
}

// findStock finds stock levels by external reference or by SKU, in the default warehouse.
func (t *Target) findStock(ctx context.Context, field string, values []string) ([]connector.Found, error) {
	matches := map[int64][]string{}
	switch field {
	case connector.FieldExternalRef:
		codes := make([]string, len(values))
		for i, v := range values {
			codes[i] = stockRefPrefix + v
		}
		rows, err := searchRead[struct {
			Code    string `json:"code"`
			Product int64  `json:"product"`
		}](ctx, t, "product.identifier", []any{[]any{"code", "in", codes}, []any{"product.active", "=", true}}, []string{"code", "product"}, nil)
		if err != nil {
			return nil, fmt.Errorf("finding stock levels by external reference: %w", err)
		}
		for _, r := range rows {
			v := strings.TrimPrefix(r.Code, stockRefPrefix)
			if !slices.Contains(matches[r.Product], v) {
				matches[r.Product] = append(matches[r.Product], v)
			}
		}
	case FieldSKU:
		rows, err := searchRead[stockVariant](ctx, t, "product.product", []any{[]any{"code", "in", values}}, []string{"code"}, nil)
		if err != nil {
			return nil, fmt.Errorf("finding stock levels by sku: %w", err)
		}
		for _, r := range rows {
			matches[r.ID] = append(matches[r.ID], r.Code)
		}
	default:
		return nil, fmt.Errorf("finding stock levels by %s: the tryton target finds them by external_ref or sku", field)
	}
	if len(matches) == 0 {
		return nil, nil
	}
	storage, err := t.storage(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("finding stock levels: %w", err)
	}
	ids := make([]int64, 0, len(matches))
	for id := range matches {
		ids = append(ids, id)
	}
	levels, err := t.readLevels(ctx, ids, storage)
	if err != nil {
		return nil, err
	}
	var out []connector.Found
	for _, id := range ids {
		for _, v := range matches[id] {
			out = append(out, connector.Found{Value: v, ID: idString(id), Fields: mustJSON(levels[id])})
		}
	}
	return out, nil
}

// readLevels reads the stock levels of variants in the storage zone: on hand, and available
// as settings.available says, with reserved the difference.
func (t *Target) readLevels(ctx context.Context, ids []int64, storage int64) (map[int64]map[string]any, error) {
	type row struct {
		ID       int64   `json:"id"`
		Code     string  `json:"code"`
		Quantity float64 `json:"quantity"`
		Forecast float64 `json:"forecast_quantity"`
	}
	var onHand, assigned []row
	if err := t.c.call(ctx, &onHand, "model.product.product.read", ids, []string{"code", "quantity", "forecast_quantity"}, t.stockContext(storage, false)); err != nil {
		return nil, fmt.Errorf("reading stock levels: %w", err)
	}
	if t.settings.Available == AvailableOnHandMinusReserved {
		if err := t.c.call(ctx, &assigned, "model.product.product.read", ids, []string{"quantity"}, t.stockContext(storage, true)); err != nil {
			return nil, fmt.Errorf("reading stock levels: %w", err)
		}
	}
	warehouse := t.settings.Warehouse
	out := map[int64]map[string]any{}
	for _, r := range onHand {
		avail := r.Quantity
		switch t.settings.Available {
		case AvailableForecast:
			avail = r.Forecast
		case AvailableOnHandMinusReserved:
			if i := slices.IndexFunc(assigned, func(a row) bool { return a.ID == r.ID }); i >= 0 {
				avail = assigned[i].Quantity
			}
		}
		out[r.ID] = map[string]any{"sku": r.Code, "on_hand": r.Quantity, "available": avail,
			"reserved": math.Max(0, r.Quantity-avail), "warehouse": warehouse}
	}
	return out, nil
}
