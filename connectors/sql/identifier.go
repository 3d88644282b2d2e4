package sql

import "strings"

// tableName is a table name split into its optional schema and its name, so that each part is
// quoted on its own ("public"."orders").
type tableName struct {
	schema, name string
}

// parseTable splits a table setting that matched the spec's pattern.
func parseTable(s string) tableName {
	if schema, name, ok := strings.Cut(s, "."); ok {
		return tableName{schema: schema, name: name}
	}
	return tableName{name: s}
}

// quoted is the table as SQL, every part quoted so that it is used exactly as written and no
// name is ever read as a keyword.
func (t tableName) quoted() string {
	if t.schema == "" {
		return quote(t.name)
	}
	return quote(t.schema) + "." + quote(t.name)
}

// quote quotes an identifier. Field names come from payloads and may hold any character, so
// the quote character is doubled as SQL demands.
func quote(ident string) string {
	return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"`
}
