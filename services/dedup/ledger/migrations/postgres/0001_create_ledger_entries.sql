-- One row per tenant, flow and source key. The primary key serves every lookup and
-- DeleteTenant (its leading column), so the table needs no other index. Keys compare bytewise
-- (COLLATE "C"), as in SQLite: exact matches are all the ledger needs, and they are cheapest
-- that way.
CREATE TABLE ledger_entries (
	tenant         text COLLATE "C" NOT NULL,
	flow           text COLLATE "C" NOT NULL,
	source_key     text COLLATE "C" NOT NULL,
	target_id      text             NOT NULL DEFAULT '',
	content_hash   text             NOT NULL DEFAULT '',
	source_version bigint           NOT NULL DEFAULT 0,
	state          text             NOT NULL CHECK (state IN ('pending', 'applied', 'failed')),
	last_event_id  text             NOT NULL DEFAULT '',
	last_action    text             NOT NULL DEFAULT '',
	updated_at     timestamptz      NOT NULL,
	PRIMARY KEY (tenant, flow, source_key)
);
