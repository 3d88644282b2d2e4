package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// collection is one collection of the webshop's API and the entity its records are.
type collection struct {
	Name   string
	Entity string
}

// defaultCollections are the demo webshop's collections (examples/erp/shop.json) in the
// order they are fed: what a record refers to comes before it (a product's categories, a
// stock level's product, an order's customer and products).
const defaultCollections = "categories=category,products=product,stock=stock,customers=customer,orders=order"

// parseCollections reads a comma-separated list of collection=entity pairs.
func parseCollections(s string) ([]collection, error) {
	var out []collection
	seen := map[string]bool{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		name, entity, ok := strings.Cut(pair, "=")
		if !ok || name == "" || entity == "" {
			return nil, fmt.Errorf("-collections: %q is not collection=entity, e.g. products=product", pair)
		}
		if seen[name] {
			return nil, fmt.Errorf("-collections: %q is named twice", name)
		}
		seen[name] = true
		out = append(out, collection{Name: name, Entity: entity})
	}
	return out, nil
}

// shop reads a webshop's REST API: json-server's, whose collections are paged with _page and
// _limit as most shops page theirs (page and per_page).
type shop struct {
	base     string
	client   *http.Client
	pageSize int
}

// records returns the records of collection c as the API sends them, page by page. ctx
// bounds the whole read.
func (s *shop) records(ctx context.Context, c collection) ([]json.RawMessage, error) {
	var all []json.RawMessage
	for page := 1; ; page++ {
		q := url.Values{"_page": {strconv.Itoa(page)}, "_limit": {strconv.Itoa(s.pageSize)}}
		items, err := s.page(ctx, c.Name, q)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		// A short page is the last; a long one says that the API ignores paging and sent
		// the whole collection.
		if len(items) != s.pageSize {
			return all, nil
		}
	}
}

func (s *shop) page(ctx context.Context, name string, q url.Values) ([]json.RawMessage, error) {
	u := strings.TrimSuffix(s.base, "/") + "/" + url.PathEscape(name) + "?" + q.Encode()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w (is the webshop running? give its address with -shop)", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading %s: HTTP %d: %s (does the webshop have a collection %q?)", u, resp.StatusCode, bytes.TrimSpace(body), name)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, fmt.Errorf("reading %s: the answer is not a JSON array of records: %w", u, err)
	}
	return items, nil
}
