-- One row per change event per flow. The primary key makes a redelivered event replace its
-- record. The indexes serve the query shapes: a tenant's newest records, one remote id's
-- history, and failures by time. Each ends in (logged_at, event_id, flow), the page order, so
-- a page is read straight off the index (scanned backwards) and the cursor is an index bound.
-- The identity columns compare bytewise (COLLATE "C"), as in SQLite, so that the page order
-- does not depend on the server's locale.
CREATE TABLE api_log_records (
	tenant          text COLLATE "C" NOT NULL,
	event_id        text COLLATE "C" NOT NULL,
	flow            text COLLATE "C" NOT NULL,
	integrator      text             NOT NULL DEFAULT '',
	entity          text             NOT NULL DEFAULT '',
	source_endpoint text             NOT NULL DEFAULT '',
	source_key      text COLLATE "C" NOT NULL DEFAULT '',
	target_id       text             NOT NULL DEFAULT '',
	action          text             NOT NULL CHECK (action IN ('created', 'updated', 'deleted', 'skipped', 'failed')),
	status          text             NOT NULL CHECK (status IN ('success', 'failure')),
	reason          text             NOT NULL DEFAULT '',
	error_code      text             NOT NULL DEFAULT '',
	attempts        integer          NOT NULL DEFAULT 0,
	duration_ns     bigint           NOT NULL DEFAULT 0,
	trace_id        text             NOT NULL DEFAULT '',
	occurred_at     timestamptz,
	logged_at       timestamptz      NOT NULL,
	PRIMARY KEY (tenant, event_id, flow)
);

CREATE INDEX api_log_records_by_time ON api_log_records (tenant, logged_at, event_id, flow);
CREATE INDEX api_log_records_by_source_key ON api_log_records (tenant, source_key, logged_at, event_id, flow);
CREATE INDEX api_log_records_by_status ON api_log_records (tenant, status, logged_at, event_id, flow);
