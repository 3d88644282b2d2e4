-- One row per applied resource. spec holds the canonical JSON the store compares byte for
-- byte. Times are unix microseconds.
CREATE TABLE resources (
	kind       TEXT    NOT NULL,
	tenant     TEXT    NOT NULL,
	name       TEXT    NOT NULL,
	spec       TEXT    NOT NULL,
	generation INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (kind, tenant, name)
) STRICT, WITHOUT ROWID;
