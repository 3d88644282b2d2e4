-- One row per change event per flow. The primary key makes a redelivered event replace its
-- record. The indexes serve the query shapes: a tenant's newest records, one remote id's
-- history, and failures by time. Each ends in (logged_at, event_id, flow), the page order, so
-- a page is read straight off the index (scanned backwards) and the cursor is an index bound.
-- Times are unix microseconds.
CREATE TABLE api_log_records (
	tenant          TEXT    NOT NULL,
	event_id        TEXT    NOT NULL,
	flow            TEXT    NOT NULL,
	integrator      TEXT    NOT NULL DEFAULT '',
	entity          TEXT    NOT NULL DEFAULT '',
	source_endpoint TEXT    NOT NULL DEFAULT '',
	source_key      TEXT    NOT NULL DEFAULT '',
	target_id       TEXT    NOT NULL DEFAULT '',
	action          TEXT    NOT NULL CHECK (action IN ('created', 'updated', 'deleted', 'skipped', 'failed')),
	status          TEXT    NOT NULL CHECK (status IN ('success', 'failure')),
	reason          TEXT    NOT NULL DEFAULT '',
	error_code      TEXT    NOT NULL DEFAULT '',
	attempts        INTEGER NOT NULL DEFAULT 0,
	duration_ns     INTEGER NOT NULL DEFAULT 0,
	trace_id        TEXT    NOT NULL DEFAULT '',
	occurred_at     INTEGER,
	logged_at       INTEGER NOT NULL,
	PRIMARY KEY (tenant, event_id, flow)
) STRICT;

CREATE INDEX api_log_records_by_time ON api_log_records (tenant, logged_at, event_id, flow);
CREATE INDEX api_log_records_by_source_key ON api_log_records (tenant, source_key, logged_at, event_id, flow);
CREATE INDEX api_log_records_by_status ON api_log_records (tenant, status, logged_at, event_id, flow);
