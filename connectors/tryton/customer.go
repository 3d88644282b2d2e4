package tryton

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/syncline/syncline/pkg/connector"
)

// The relation types that link a company party to its contact person (party_relationship).
// The target creates them, each the other's reverse, when the database has none.
const (
	relationContact   = "Contact Person"
	relationContactOf = "Contact Person Of"
)

// address is the canonical address.
type address struct {
	Street      string `json:"street"`
	HouseNumber string `json:"house_number"`
	Postcode    string `json:"postcode"`
	City        string `json:"city"`
	Country     string `json:"country"`
	Name        string `json:"name"`
}

// customer is the canonical customer record.
type customer struct {
	Email           string   `json:"email"`
	Name            string   `json:"name"`
	Company         string   `json:"company"`
	Phone           string   `json:"phone"`
	TaxID           string   `json:"tax_id"`
	BillingAddress  *address `json:"billing_address"`
	ShippingAddress *address `json:"shipping_address"`
}

// street is Tryton's one street line: the street, then the house number.
func (a *address) street() string {
	return strings.TrimSpace(a.Street + " " + a.HouseNumber)
}

// values are the fields of a party.address for a.
func (t *Target) addressValues(ctx context.Context, a *address) (map[string]any, error) {
	if a.Country == "" {
		return nil, refuse("an address has no country")
	}
	country, err := t.lookup(ctx, "country.country", "code", strings.ToUpper(a.Country), "country with the code")
	if err != nil {
		return nil, err
	}
	v := map[string]any{"street": a.street(), "postal_code": a.Postcode, "city": a.City, "country": country}
	if a.Name != "" {
		v["party_name"] = a.Name
	}
	return v, nil
}

// euVAT reports whether a tax id looks like an EU VAT number (two letters, then digits or
// letters): Tryton validates those as eu_vat identifiers; others are kept untyped.
func euVAT(id string) bool {
	if len(id) < 4 {
		return false
	}
	for _, r := range id[:2] {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

func taxIdentifier(id string) map[string]any {
	v := map[string]any{"code": id, "type": nil}
	if euVAT(id) {
		v["type"] = "eu_vat"
	}
	return v
}

// writeCustomer creates, updates or deletes one customer. A customer with a company is a
// company party (with the e-mail and phone as its contact mechanisms, the e-mail named
// after the person) and a person party linked to it as its contact person; one without is a
// person party.
func (t *Target) writeCustomer(ctx context.Context, w connector.Write) (string, error) {
	if w.Op == connector.WriteDelete {
		return w.ID, t.deleteParty(ctx, w.ID)
	}
	var rec customer
	have, err := decodePayload(w.Payload, &rec)
	if err != nil {
		return "", err
	}
	switch w.Op {
	case connector.WriteCreate:
		// A customer flow's records always have an e-mail (the canonical shape requires
		// it); a supplier made for an invoice may have none, and is found by name.
		if rec.Name == "" {
			return "", refuse("a customer needs a name")
		}
		t.seq.Lock() // a party's code comes from a sequence
		defer t.seq.Unlock()
		id, err := t.createCustomer(ctx, w.Key, &rec)
		if err != nil {
			return "", err
		}
		return idString(id), nil
	case connector.WriteUpdate:
		id, err := parseID(w.ID)
		if err != nil {
			return "", err
		}
		return w.ID, t.updateCustomer(ctx, id, &rec, have)
	}
	return "", refuse("write %q is not create, update or delete", w.Op)
}

func (t *Target) createCustomer(ctx context.Context, key string, rec *customer) (int64, error) {
	var mechanisms []map[string]any
	if rec.Email != "" {
		mechanisms = append(mechanisms, map[string]any{"type": "email", "value": rec.Email})
	}
	name := rec.Name
	if rec.Company != "" {
		name = rec.Company
		for _, m := range mechanisms {
			m["name"] = rec.Name
		}
	}
	if rec.Phone != "" {
		mechanisms = append(mechanisms, map[string]any{"type": "phone", "value": rec.Phone})
	}
	identifiers := []map[string]any{{"type": nil, "code": refPrefix + key}}
	if rec.TaxID != "" {
		identifiers = append(identifiers, taxIdentifier(rec.TaxID))
	}
	addresses, err := t.newAddresses(ctx, rec.BillingAddress, rec.ShippingAddress)
	if err != nil {
		return 0, err
	}
	values := map[string]any{
		"name":        name,
		"identifiers": []any{[]any{"create", identifiers}},
	}
	if len(mechanisms) > 0 {
		values["contact_mechanisms"] = []any{[]any{"create", mechanisms}}
	}
	if len(addresses) > 0 {
		values["addresses"] = []any{[]any{"create", addresses}}
	}
	id, err := t.create(ctx, "party.party", values)
	if err != nil {
		return 0, err
	}
	if rec.Company != "" {
		if err := t.ensureContactPerson(ctx, id, rec.Name, rec.Email, true, rec.Email != ""); err != nil {
			return 0, err
		}
	}
	return id, nil
}

// newAddresses are the party.address values of a new customer: one address when billing
// and shipping are the same, else one for each, flagged for invoices and deliveries.
func (t *Target) newAddresses(ctx context.Context, billing, shipping *address) ([]map[string]any, error) {
	var out []map[string]any
	if billing != nil {
		v, err := t.addressValues(ctx, billing)
		if err != nil {
			return nil, err
		}
		v["invoice"] = true
		v["delivery"] = shipping != nil && *shipping == *billing
		out = append(out, v)
	}
	if shipping != nil && (billing == nil || *shipping != *billing) {
		v, err := t.addressValues(ctx, shipping)
		if err != nil {
			return nil, err
		}
		v["delivery"] = true
		v["invoice"] = false
		out = append(out, v)
	}
	return out, nil
}

type mechanismRow struct {
	ID    int64  `json:"id"`
	Party int64  `json:"party"`
	Type  string `json:"type"`
	Value string `json:"value"`
	Name  string `json:"name"`
}

type addressRow struct {
	ID         int64  `json:"id"`
	Street     string `json:"street"`
	PostalCode string `json:"postal_code"`
	City       string `json:"city"`
	PartyName  string `json:"party_name"`
	Country    *struct {
		Code string `json:"code"`
	} `json:"country."`
	Invoice  flag `json:"invoice"`
	Delivery flag `json:"delivery"`
}

// is reports whether the party's address is a, as the target writes it.
func (row *addressRow) is(a *address) bool {
	return row.Street == a.street() && row.PostalCode == a.Postcode && row.City == a.City &&
		row.Country != nil && strings.EqualFold(row.Country.Code, a.Country) && row.PartyName == a.Name
}

type identifierRow struct {
	ID    int64  `json:"id"`
	Party int64  `json:"party"`
	Type  string `json:"type"`
	Code  string `json:"code"`
}

// updateCustomer writes the fields present in the record, keeping contact mechanisms and
// addresses in step: a value is written over the one of its kind the party has, never added
// next to it, and an address equal to one the party has is reused.
func (t *Target) updateCustomer(ctx context.Context, id int64, rec *customer, have map[string]bool) error {
	contact, err := t.contactPerson(ctx, id)
	if err != nil {
		return err
	}
	isCompany := contact != 0
	if have["company"] {
		isCompany = rec.Company != ""
	}
	party := map[string]any{}
	switch {
	case have["company"] && rec.Company != "":
		party["name"] = rec.Company
	case have["name"] && !isCompany:
		party["name"] = rec.Name
	}
	if err := t.write(ctx, "party.party", []int64{id}, party); err != nil {
		return err
	}
	if have["email"] || (have["name"] && isCompany) {
		person := ""
		if isCompany {
			person = rec.Name
		}
		if err := t.keepMechanism(ctx, id, "email", rec.Email, have["email"], person, have["name"]); err != nil {
			return err
		}
	}
	if have["phone"] {
		if err := t.keepMechanism(ctx, id, "phone", rec.Phone, true, "", false); err != nil {
			return err
		}
	}
	if isCompany && (have["name"] || have["email"]) {
		t.seq.Lock()
		err := t.ensureContactPerson(ctx, id, rec.Name, rec.Email, have["name"], have["email"])
		t.seq.Unlock()
		if err != nil {
			return err
		}
	}
	if have["tax_id"] {
		if err := t.keepTaxID(ctx, id, rec.TaxID); err != nil {
			return err
		}
	}
	if have["billing_address"] || have["shipping_address"] {
		if err := t.keepAddresses(ctx, id, rec.BillingAddress, rec.ShippingAddress, have); err != nil {
			return err
		}
	}
	return nil
}

// keepMechanism makes the party's first contact mechanism of kind hold value (and, when
// setName, name): it writes over that one, creates one when there is none, and removes it
// when value is empty.
func (t *Target) keepMechanism(ctx context.Context, party int64, kind, value string, setValue bool, name string, setName bool) error {
	rows, err := searchRead[mechanismRow](ctx, t, "party.contact_mechanism", []any{[]any{"party", "=", party}, []any{"type", "=", kind}}, []string{"type", "value", "name"}, nil)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		if !setValue || value == "" {
			return nil
		}
		v := map[string]any{"party": party, "type": kind, "value": value}
		if setName && name != "" {
			v["name"] = name
		}
		_, err := t.create(ctx, "party.contact_mechanism", v)
		return err
	}
	first := rows[0]
	if setValue && value == "" {
		return t.c.call(ctx, nil, "model.party.contact_mechanism.delete", []int64{first.ID}, t.ctx)
	}
	v := map[string]any{}
	if setValue && first.Value != value {
		v["value"] = value
	}
	if setName && first.Name != name {
		v["name"] = name
	}
	return t.write(ctx, "party.contact_mechanism", []int64{first.ID}, v)
}

// keepTaxID makes the party's tax identifier (an eu_vat one, or else the first untyped one
// that is not an external reference) hold id.
func (t *Target) keepTaxID(ctx context.Context, party int64, id string) error {
	rows, err := searchRead[identifierRow](ctx, t, "party.identifier", []any{[]any{"party", "=", party}}, []string{"type", "code"}, nil)
	if err != nil {
		return err
	}
	var current *identifierRow
	for i := range rows {
		r := &rows[i]
		if r.Type == "eu_vat" || (r.Type == "" && !strings.HasPrefix(r.Code, refPrefix)) {
			current = r
			break
		}
	}
	switch {
	case current == nil && id == "":
		return nil
	case current == nil:
		v := taxIdentifier(id)
		v["party"] = party
		_, err := t.create(ctx, "party.identifier", v)
		return err
	case id == "":
		return t.c.call(ctx, nil, "model.party.identifier.delete", []int64{current.ID}, t.ctx)
	case current.Code != id:
		return t.write(ctx, "party.identifier", []int64{current.ID}, taxIdentifier(id))
	}
	return nil
}

// keepAddresses makes the party's invoice and delivery addresses those of the record. An
// address equal to one the party has gets the flag; otherwise the address flagged for the
// role is rewritten, and only a party with none gets a new one.
func (t *Target) keepAddresses(ctx context.Context, party int64, billing, shipping *address, have map[string]bool) error {
	rows, err := searchRead[addressRow](ctx, t, "party.address", []any{[]any{"party", "=", party}}, []string{"street", "postal_code", "city", "party_name", "country.code", "invoice", "delivery"}, nil)
	if err != nil {
		return err
	}
	type role struct {
		a     *address
		field string
		set   bool
	}
	for _, r := range []role{{billing, "invoice", have["billing_address"]}, {shipping, "delivery", have["shipping_address"]}} {
		if !r.set || r.a == nil {
			continue
		}
		v, err := t.addressValues(ctx, r.a)
		if err != nil {
			return err
		}
		match := slices.IndexFunc(rows, func(row addressRow) bool { return row.is(r.a) })
		if match >= 0 {
			if err := t.write(ctx, "party.address", []int64{rows[match].ID}, map[string]any{r.field: true}); err != nil {
				return err
			}
			setRole(&rows[match], r.field)
			continue
		}
		holder := -1
		for i, row := range rows {
			if (r.field == "invoice" && bool(row.Invoice)) || (r.field == "delivery" && bool(row.Delivery)) {
				holder = i
				break
			}
		}
		// An address that also serves the other role keeps serving it; the role moves to a
		// new address instead of rewriting both.
		if holder >= 0 && !(bool(rows[holder].Invoice) && bool(rows[holder].Delivery)) {
			if err := t.write(ctx, "party.address", []int64{rows[holder].ID}, v); err != nil {
				return err
			}
			continue
		}
		if holder >= 0 {
			if err := t.write(ctx, "party.address", []int64{rows[holder].ID}, map[string]any{r.field: false}); err != nil {
				return err
			}
		}
		v["party"] = party
		v[r.field] = true
		v[other(r.field)] = false
		nid, err := t.create(ctx, "party.address", v)
		if err != nil {
			return err
		}
		rows = append(rows, addressRow{ID: nid, Street: r.a.street(), PostalCode: r.a.Postcode, City: r.a.City, PartyName: r.a.Name})
		setRole(&rows[len(rows)-1], r.field)
	}
	return nil
}

func other(role string) string {
	if role == "invoice" {
		return "delivery"
	}
	return "invoice"
}

func setRole(r *addressRow, role string) {
	if role == "invoice" {
		r.Invoice = true
	} else {
		r.Delivery = true
	}
}

// relationTypes returns the ids of the contact-person relation type and its reverse,
// creating both when the database has none. It runs under t.seq.
func (t *Target) relationTypes(ctx context.Context) (contact, contactOf int64, err error) {
	type row struct {
		ID      int64    `json:"id"`
		Name    string   `json:"name"`
		Reverse many2one `json:"reverse"`
	}
	rows, err := searchRead[row](ctx, t, "party.relation.type", []any{[]any{"name", "in", []string{relationContact, relationContactOf}}}, []string{"name", "reverse"}, nil)
	if err != nil {
		return 0, 0, err
	}
	for _, r := range rows {
		if r.Name == relationContact && contact == 0 {
			contact = r.ID
			if r.Reverse != nil {
				contactOf = *r.Reverse
			}
		}
	}
	if contact != 0 && contactOf != 0 {
		return contact, contactOf, nil
	}
	if contact == 0 {
		if contact, err = t.create(ctx, "party.relation.type", map[string]any{"name": relationContact}); err != nil {
			return 0, 0, err
		}
	}
	if contactOf, err = t.create(ctx, "party.relation.type", map[string]any{"name": relationContactOf, "reverse": contact}); err != nil {
		return 0, 0, err
	}
	return contact, contactOf, t.write(ctx, "party.relation.type", []int64{contact}, map[string]any{"reverse": contactOf})
}

// contactPerson returns the company party's contact person, 0 when it has none.
func (t *Target) contactPerson(ctx context.Context, company int64) (int64, error) {
	type row struct {
		To   int64 `json:"to"`
		Type *struct {
			Name string `json:"name"`
		} `json:"type."`
	}
	rows, err := searchRead[row](ctx, t, "party.relation.all", []any{[]any{"from_", "=", company}, []any{"type.name", "=", relationContact}}, []string{"to", "type.name"}, nil)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	return rows[0].To, nil
}

// ensureContactPerson makes the company party's contact person a person party with name and
// email (those set), creating it and the relation when there is none. It runs under t.seq.
func (t *Target) ensureContactPerson(ctx context.Context, company int64, name, email string, setName, setEmail bool) error {
	person, err := t.contactPerson(ctx, company)
	if err != nil {
		return err
	}
	if person != 0 {
		if setName {
			if err := t.write(ctx, "party.party", []int64{person}, map[string]any{"name": name}); err != nil {
				return err
			}
		}
		if setEmail {
			return t.keepMechanism(ctx, person, "email", email, true, "", false)
		}
		return nil
	}
	contact, _, err := t.relationTypes(ctx)
	if err != nil {
		return err
	}
	values := map[string]any{"name": name}
	if email != "" {
		values["contact_mechanisms"] = []any{[]any{"create", []map[string]any{{"type": "email", "value": email}}}}
	}
	if person, err = t.create(ctx, "party.party", values); err != nil {
		return err
	}
	return t.write(ctx, "party.party", []int64{company}, map[string]any{"relations": []any{[]any{"create", []map[string]any{{"to": person, "type": contact}}}}})
}

// deleteParty deletes a customer's party and its contact person. A party Tryton still
// needs (a sale, an invoice) is refused by Tryton, and that refusal is the record's.
func (t *Target) deleteParty(ctx context.Context, sid string) error {
	id, err := parseID(sid)
	if err != nil {
		return err
	}
	ok, err := t.exists(ctx, "party.party", id)
	if err != nil || !ok {
		return err
	}
	person, err := t.contactPerson(ctx, id)
	if err != nil {
		return err
	}
	ids := []int64{id}
	if person != 0 {
		ids = append(ids, person)
	}
	return t.c.call(ctx, nil, "model.party.party.delete", ids, t.ctx)
}

// findCustomers finds parties by external reference, e-mail or name (both
// case-insensitively). By e-mail, a party that is only some company's contact person is
// left out when the company matches too, so that a company customer is found as the
// company. By name, company parties come before persons.
func (t *Target) findCustomers(ctx context.Context, field string, values []string) ([]connector.Found, error) {
	if field == FieldName {
		return t.findCustomersByName(ctx, values)
	}
	matches := map[int64][]string{}
	switch field {
	case connector.FieldExternalRef:
		codes := make([]string, len(values))
		for i, v := range values {
			codes[i] = refPrefix + v
		}
		rows, err := searchRead[identifierRow](ctx, t, "party.identifier", []any{[]any{"code", "in", codes}, []any{"party.active", "=", true}}, []string{"party", "code"}, nil)
		if err != nil {
			return nil, fmt.Errorf("finding customers by external reference: %w", err)
		}
		for _, r := range rows {
			v := strings.TrimPrefix(r.Code, refPrefix)
			if !slices.Contains(matches[r.Party], v) {
				matches[r.Party] = append(matches[r.Party], v)
			}
		}
	case FieldEmail:
		for _, v := range values {
			// ilike treats _ and % as wildcards; the exact, case-insensitive comparison
			// below drops what they over-match.
			rows, err := searchRead[mechanismRow](ctx, t, "party.contact_mechanism", []any{[]any{"type", "=", "email"}, []any{"value", "ilike", v}, []any{"party.active", "=", true}}, []string{"party", "value"}, nil)
			if err != nil {
				return nil, fmt.Errorf("finding customers by e-mail: %w", err)
			}
			var parties []int64
			for _, r := range rows {
				if strings.EqualFold(strings.TrimSpace(r.Value), strings.TrimSpace(v)) && !slices.Contains(parties, r.Party) {
					parties = append(parties, r.Party)
				}
			}
			parties, err = t.dropContactPersons(ctx, parties)
			if err != nil {
				return nil, err
			}
			for _, p := range parties {
				matches[p] = append(matches[p], v)
			}
		}
	default:
		return nil, fmt.Errorf("finding customers by %s: the tryton target finds them by external_ref, email or name", field)
	}
	var out []connector.Found
	for id, vals := range matches {
		fields, err := t.readCustomer(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("reading customer party %d: %w", id, err)
		}
		for _, v := range vals {
			out = append(out, connector.Found{Value: v, ID: idString(id), Fields: fields})
		}
	}
	return out, nil
}

// findCustomersByName finds the parties whose name is one of values, compared
// case-insensitively: for each value the company parties (those with a contact person)
// first, then the persons, each in the order Tryton created them.
func (t *Target) findCustomersByName(ctx context.Context, values []string) ([]connector.Found, error) {
	type row struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	var parties []row
	for _, v := range values {
		// ilike treats _ and % as wildcards; the exact, case-insensitive comparison
		// below drops what they over-match.
		rows, err := searchRead[row](ctx, t, "party.party", []any{[]any{"name", "ilike", v}}, []string{"name"}, nil)
		if err != nil {
			return nil, fmt.Errorf("finding customers by name: %w", err)
		}
		for _, r := range rows {
			if strings.EqualFold(strings.TrimSpace(r.Name), strings.TrimSpace(v)) && !slices.ContainsFunc(parties, func(p row) bool { return p.ID == r.ID }) {
				parties = append(parties, r)
			}
		}
	}
	if len(parties) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(parties))
	for i, p := range parties {
		ids[i] = p.ID
	}
	type relation struct {
		From int64 `json:"from_"`
	}
	companies, err := searchRead[relation](ctx, t, "party.relation.all", []any{[]any{"from_", "in", ids}, []any{"type.name", "=", relationContact}}, []string{"from_"}, nil)
	if err != nil {
		return nil, fmt.Errorf("finding customers by name: %w", err)
	}
	isCompany := func(id int64) bool {
		return slices.ContainsFunc(companies, func(r relation) bool { return r.From == id })
	}
	slices.SortStableFunc(parties, func(a, b row) int {
		switch ca, cb := isCompany(a.ID), isCompany(b.ID); {
		case ca && !cb:
			return -1
		case cb && !ca:
			return 1
		}
		return 0
	})
	var out []connector.Found
	for _, v := range values {
		for _, p := range parties {
			if !strings.EqualFold(strings.TrimSpace(p.Name), strings.TrimSpace(v)) {
				continue
			}
			fields, err := t.readCustomer(ctx, p.ID)
			if err != nil {
				return nil, fmt.Errorf("reading customer party %d: %w", p.ID, err)
			}
			out = append(out, connector.Found{Value: v, ID: idString(p.ID), Fields: fields})
		}
	}
	return out, nil
}

// dropContactPersons leaves out of parties those that are the contact person of another
// party in it.
func (t *Target) dropContactPersons(ctx context.Context, parties []int64) ([]int64, error) {
	if len(parties) < 2 {
		return parties, nil
	}
	type row struct {
		From int64 `json:"from_"`
		To   int64 `json:"to"`
	}
	rows, err := searchRead[row](ctx, t, "party.relation.all", []any{[]any{"from_", "in", parties}, []any{"to", "in", parties}, []any{"type.name", "=", relationContact}}, []string{"from_", "to"}, nil)
	if err != nil {
		return nil, fmt.Errorf("finding contact persons: %w", err)
	}
	var out []int64
	for _, p := range parties {
		if !slices.ContainsFunc(rows, func(r row) bool { return r.To == p }) {
			out = append(out, p)
		}
	}
	return out, nil
}

// readCustomer reads a party back in the canonical shape.
func (t *Target) readCustomer(ctx context.Context, id int64) ([]byte, error) {
	var parties []struct {
		Name string `json:"name"`
	}
	if err := t.c.call(ctx, &parties, "model.party.party.read", []int64{id}, []string{"name"}, t.ctx); err != nil {
		return nil, err
	}
	if len(parties) != 1 {
		return nil, fmt.Errorf("reading party %d from Tryton gave %d parties", id, len(parties))
	}
	out := map[string]any{"name": parties[0].Name}
	mech, err := searchRead[mechanismRow](ctx, t, "party.contact_mechanism", []any{[]any{"party", "=", id}}, []string{"type", "value", "name"}, nil)
	if err != nil {
		return nil, err
	}
	for _, m := range mech {
		if m.Type == "email" && out["email"] == nil {
			out["email"] = m.Value
		}
		if m.Type == "phone" && out["phone"] == nil {
			out["phone"] = m.Value
		}
	}
	person, err := t.contactPerson(ctx, id)
	if err != nil {
		return nil, err
	}
	if person != 0 {
		var people []struct {
			Name string `json:"name"`
		}
		if err := t.c.call(ctx, &people, "model.party.party.read", []int64{person}, []string{"name"}, t.ctx); err != nil {
			return nil, err
		}
		out["company"] = parties[0].Name
		if len(people) == 1 {
			out["name"] = people[0].Name
		}
	}
	ids, err := searchRead[identifierRow](ctx, t, "party.identifier", []any{[]any{"party", "=", id}}, []string{"type", "code"}, nil)
	if err != nil {
		return nil, err
	}
	for _, r := range ids {
		if r.Type == "eu_vat" || (r.Type == "" && !strings.HasPrefix(r.Code, refPrefix)) {
			out["tax_id"] = r.Code
			break
		}
	}
	addrs, err := searchRead[addressRow](ctx, t, "party.address", []any{[]any{"party", "=", id}}, []string{"street", "postal_code", "city", "party_name", "country.code", "invoice", "delivery"}, nil)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		v := map[string]any{"street": a.Street, "postcode": a.PostalCode, "city": a.City}
		if a.Country != nil {
			v["country"] = a.Country.Code
		}
		if a.PartyName != "" {
			v["name"] = a.PartyName
		}
		if a.Invoice && out["billing_address"] == nil {
			out["billing_address"] = v
		}
		if a.Delivery && out["shipping_address"] == nil {
			out["shipping_address"] = v
		}
	}
	return mustJSON(out), nil
}
