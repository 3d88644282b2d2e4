package tryton

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/syncline/syncline/pkg/connector"
)

// Type is the connector type name endpoints use for this target.
const Type = "tryton"

// The entities the target serves.
const (
	EntityCustomer = "customer"
	EntityProduct  = "product"
	EntityCategory = "category"
	EntityStock    = "stock"
	EntityOrder    = "order"
	EntityInvoice  = "invoice"
	EntityPayment  = "payment"

	// The stock documents (pkg/entity's document shape), each kept as a Tryton stock record:
	// a supplier shipment, a customer return shipment, an inventory, and an internal shipment
	// of the storage zone to lost and found.
	EntityGoodsReceipt   = "goods-receipt"
	EntityOrderReturn    = "order-return"
	EntityInventoryCount = "inventory-count"
	EntityWriteOff       = "write-off"
)

// served names the entities the target serves, for the error of a call with another.
const served = "customer, product, category, stock, order, invoice, payment, goods-receipt, order-return, inventory-count and write-off"

// The fields records are found by, besides connector.FieldExternalRef.
const (
	FieldEmail = "email"
	FieldSKU   = "sku"
	FieldName  = "name"
	// FieldNumber is an order's number, which a sale keeps as its reference, an invoice's,
	// which the invoice keeps as its reference (else its comment), or a stock document's,
	// which its note keeps (see stockdocument.go).
	FieldNumber = connector.FieldNumber
)

// The states the target takes a sale it writes to (connector.Write.State), the default
// first: a draft, a quotation (Tryton draws the sale's number) or a confirmed sale (Tryton
// makes its invoice and shipment).
const (
	StateDraft     = "draft"
	StateQuotation = "quotation"
	StateConfirmed = "confirmed"
)

// The states the target takes a stock document to besides draft: a receipt or a return is
// received (its goods are in the warehouse's input zone) and then done (put away into the
// storage zone); an inventory count and a write-off are done (their stock moved).
const (
	StateReceived = "received"
	StateDone     = "done"
)

// saleStates, invoiceStates, shipmentStates and stockStates are the states the target takes
// a sale, an invoice, a receipt or return, and a count or write-off to
// (connector.Capabilities.States), the default first.
var (
	saleStates     = []string{StateDraft, StateQuotation, StateConfirmed}
	invoiceStates  = []string{InvoiceDraft, InvoiceValidated, InvoicePosted}
	shipmentStates = []string{StateDraft, StateReceived, StateDone}
	stockStates    = []string{StateDraft, StateDone}
)

// documentState is the state a write asks a document (what names it: "a sale") to be taken
// to: one of states, the first when the write names none.
func documentState(what, s string, states []string) (string, error) {
	if s == "" {
		return states[0], nil
	}
	if slices.Contains(states, s) {
		return s, nil
	}
	return "", refuse("state %q is not one the tryton target takes %s to: %s; set the flow's spec.document.state to one of them", s, what, strings.Join(states, ", "))
}

// The source document types the target takes as orders.
const TypeOrder = "order"

// The formulas the available setting names: how Found.Fields' available of a stock level is
// read from Tryton.
const (
	// AvailableOnHandMinusReserved is the storage zone's quantity less the goods reserved
	// for shipments (Tryton's stock_assign).
	AvailableOnHandMinusReserved = "on_hand_minus_reserved"
	// AvailableForecast is on hand less every planned move from today on (forecast_quantity).
	AvailableForecast = "forecast"
	// AvailableOnHand ignores reservations.
	AvailableOnHand = "on_hand"
)

// Settings configure one Tryton target. See spec for what each means.
type Settings struct {
	URL      string
	Database string
	User     string
	Password string
	// Company is the company's name; empty uses the user's current company.
	Company string
	// Warehouse is the code of the warehouse stock levels are set in when a record names none.
	Warehouse string
	// AccountCategory is the accounting category new products get, by name; empty: none.
	AccountCategory string
	// PriceIncludesTax says that Tryton's list prices hold gross prices.
	PriceIncludesTax bool
	ManageStock      bool
	Available        string
	Timeout          time.Duration

	// InvoiceLineCategory is the accounting category, by name, whose revenue or expense
	// account and taxes book invoice lines without a SKU; empty: AccountCategory.
	InvoiceLineCategory string
	// PaymentJournal is the code of the cash journal whose invoice payment method books
	// payments.
	PaymentJournal string
}

// spec is the single source of truth for the settings: Register hands it to the registry, and
// Open checks Settings against it, so a setting the control plane accepts is one Open accepts.
func spec() connector.Spec {
	return connector.Spec{
		Type:     Type,
		Kind:     connector.KindTarget,
		Summary:  "Writes customers, products, categories, stock levels, orders (as sales), invoices, payments, goods receipts, order returns, inventory counts and write-offs into a Tryton 6.0 ERP over JSON-RPC.",
		Reaches:  reaches,
		Entities: entities,
		// Tryton draws party codes and sale, invoice and inventory numbers from
		// sequences that parallel writers race on (and SQLite databases lock):
		// one request at a time per endpoint, unless the operator says more.
		Budget: connector.BudgetConfig{MaxConcurrency: 1},
		Fields: []connector.Field{
			{Name: "url", Type: connector.TypeString, Required: true, Pattern: `https?://[^/?#\s]+(/[^?#\s]*)?`,
				Summary: "the Tryton server's URL without the database, e.g. https://erp.example.com (http:// only inside a trusted network)"},
			{Name: "database", Type: connector.TypeString, Required: true, Pattern: `[A-Za-z0-9_.-]+`,
				Summary: "the Tryton database's name"},
			{Name: "user", Type: connector.TypeString, Required: true,
				Summary: "the Tryton login the connector uses: give it a login of its own, so that a person's mistyped passwords never lock it out"},
			{Name: "password", Type: connector.TypeString, Required: true, Secret: true, Credential: true,
				Summary: "the Tryton user's password: a credential, given under spec.credentials"},
			{Name: "company", Type: connector.TypeString, Default: "",
				Summary: "the company records belong to, by name; empty: the user's current company"},
			{Name: "warehouse", Type: connector.TypeString, Default: "WH",
				Summary: "the code of the warehouse whose stock levels are set when a stock record names none, and that sales ship from"},
			{Name: "account_category", Type: connector.TypeString, Default: "",
				Summary: "the accounting product category (by name, e.g. Goods) new products get, so that they can be invoiced; empty: none"},
			{Name: "invoice_line_category", Type: connector.TypeString, Default: "",
				Summary: "the accounting product category (by name) whose revenue (sales) or expense (purchase) account and taxes book invoice lines without a sku; empty: account_category"},
			{Name: "payment_journal", Type: connector.TypeString, Default: "CASH",
				Summary: "the code of the cash journal whose invoice payment method records payments against invoices (Tryton's pay wizard); the method must exist in Tryton"},
			{Name: "price_includes_tax", Type: connector.TypeBool, Default: false,
				Summary: "whether Tryton's list prices include tax: a record's price is converted with the customer taxes of the product's accounting category when its basis differs"},
			{Name: "manage_stock", Type: connector.TypeBool, Default: true,
				Summary: "whether Tryton manages stock for this endpoint: when false, every stock level is skipped with that reason"},
			{Name: "available", Type: connector.TypeString, Default: AvailableOnHandMinusReserved,
				Enum:    []string{AvailableOnHandMinusReserved, AvailableForecast, AvailableOnHand},
				Summary: "how a stock level's available quantity is read: on_hand_minus_reserved (on hand less reservations), forecast (less every planned move) or on_hand"},
			{Name: "timeout", Type: connector.TypeDuration, Default: "30s",
				Summary: "how long one call to Tryton may take"},
		},
	}
}

// entities lists what the target does with each entity; see the package doc for where each
// keeps the external reference.
func entities(map[string]any) ([]connector.Capabilities, error) {
	return []connector.Capabilities{
		{Entity: EntityCustomer, FindBy: []string{connector.FieldExternalRef, FieldEmail, FieldName}, Read: true,
			Create: true, Update: true, Delete: true, Canonical: true},
		{Entity: EntityProduct, FindBy: []string{connector.FieldExternalRef, FieldSKU}, Read: true,
			Create: true, Update: true, Delete: true, Canonical: true},
		{Entity: EntityCategory, FindBy: []string{connector.FieldExternalRef, FieldName}, Read: true,
			Create: true, Update: true, Delete: true, Canonical: true},
		{Entity: EntityStock, FindBy: []string{connector.FieldExternalRef, FieldSKU}, Read: true,
			Create: true, Update: true, Canonical: true},
		// A sale can only be changed while it is a draft, and Tryton keeps the sales it
		// invoiced or shipped: no deletes.
		{Entity: EntityOrder, FindBy: []string{connector.FieldExternalRef, FieldNumber}, Read: true,
			Create: true, Update: true, Canonical: true,
			States: saleStates, Types: []string{TypeOrder}},
		{Entity: EntityInvoice, FindBy: []string{connector.FieldExternalRef, FieldNumber}, Read: true,
			Create: true, Update: true, Canonical: true, States: invoiceStates},
		{Entity: EntityPayment, FindBy: []string{connector.FieldExternalRef}, Create: true, Canonical: true},
		// Stock documents are changed only while they are drafts (past draft their stock
		// has moved), and Tryton keeps the moves they made: no deletes.
		{Entity: EntityGoodsReceipt, FindBy: []string{connector.FieldExternalRef, FieldNumber}, Read: true,
			Create: true, Update: true, Canonical: true, States: shipmentStates},
		{Entity: EntityOrderReturn, FindBy: []string{connector.FieldExternalRef, FieldNumber}, Read: true,
			Create: true, Update: true, Canonical: true, States: shipmentStates},
		{Entity: EntityInventoryCount, FindBy: []string{connector.FieldExternalRef, FieldNumber}, Read: true,
			Create: true, Update: true, Canonical: true, States: stockStates},
		{Entity: EntityWriteOff, FindBy: []string{connector.FieldExternalRef, FieldNumber}, Read: true,
			Create: true, Update: true, Canonical: true, States: stockStates},
	}, nil
}

// reaches is the Tryton server of settings.url.
func reaches(m map[string]any) ([]connector.Destination, error) {
	raw, _ := m["url"].(string)
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, &connector.SettingsError{Path: "settings.url", Reason: fmt.Sprintf("%q is not an http(s) URL with a host", raw)}
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 {
		return nil, &connector.SettingsError{Path: "settings.url", Reason: fmt.Sprintf("port %q is not a port number", port)}
	}
	// No Database: Tryton's database is a path of its HTTP API, not a database protocol's,
	// so a policy that protects a database server by database name must refuse it whole.
	return []connector.Destination{{Setting: "settings.url", Host: host, Port: p}}, nil
}

// Register registers the "tryton" target with its spec and factory.
func Register(r *connector.Registry) error {
	return r.RegisterTarget(spec(), func(ctx context.Context, settings map[string]any, env connector.Env) (connector.Target, error) {
		return Open(ctx, settingsFrom(settings), env)
	})
}

// settingsFrom reads settings that the registry validated, so every value has its type.
func settingsFrom(m map[string]any) Settings {
	var s Settings
	s.URL, _ = m["url"].(string)
	s.Database, _ = m["database"].(string)
	s.User, _ = m["user"].(string)
	s.Password, _ = m["password"].(string)
	s.Company, _ = m["company"].(string)
	s.Warehouse, _ = m["warehouse"].(string)
	s.AccountCategory, _ = m["account_category"].(string)
	s.PriceIncludesTax, _ = m["price_includes_tax"].(bool)
	s.InvoiceLineCategory, _ = m["invoice_line_category"].(string)
	s.PaymentJournal, _ = m["payment_journal"].(string)
	s.ManageStock, _ = m["manage_stock"].(bool)
	s.Available, _ = m["available"].(string)
	s.Timeout, _ = m["timeout"].(time.Duration)
	return s
}

// validate checks s against spec and env's egress policy, and fills in defaults. ctx bounds
// the name lookups.
func (s *Settings) validate(ctx context.Context, env connector.Env) error {
	r := connector.NewRegistry()
	if err := Register(r); err != nil {
		return err
	}
	m := map[string]any{"url": s.URL, "database": s.Database, "user": s.User, "password": s.Password,
		"price_includes_tax": s.PriceIncludesTax, "manage_stock": s.ManageStock}
	for k, v := range map[string]string{"company": s.Company, "warehouse": s.Warehouse,
		"account_category": s.AccountCategory, "available": s.Available,
		"invoice_line_category": s.InvoiceLineCategory, "payment_journal": s.PaymentJournal} {
		if v != "" {
			m[k] = v
		}
	}
	if s.Timeout != 0 {
		m["timeout"] = s.Timeout.String()
	}
	valid, err := r.ValidateSettings(Type, m)
	if err != nil {
		return err
	}
	if err := r.CheckEgress(ctx, Type, valid, env); err != nil {
		return err
	}
	*s = settingsFrom(valid)
	return nil
}
