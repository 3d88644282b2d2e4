-- One row per tenant, flow and source key. WITHOUT ROWID stores the rows in primary-key order,
-- so a lookup is one B-tree search and DeleteTenant one range. updated_at is unix microseconds.
CREATE TABLE ledger_entries (
	tenant         TEXT    NOT NULL,
	flow           TEXT    NOT NULL,
	source_key     TEXT    NOT NULL,
	target_id      TEXT    NOT NULL DEFAULT '',
	content_hash   TEXT    NOT NULL DEFAULT '',
	source_version INTEGER NOT NULL DEFAULT 0,
	state          TEXT    NOT NULL CHECK (state IN ('pending', 'applied', 'failed')),
	last_event_id  TEXT    NOT NULL DEFAULT '',
	last_action    TEXT    NOT NULL DEFAULT '',
	updated_at     INTEGER NOT NULL,
	PRIMARY KEY (tenant, flow, source_key)
) STRICT, WITHOUT ROWID;
