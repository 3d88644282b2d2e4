-- One row per dead letter: what the bus knows of it in the clear, for listing and filtering,
-- and the event itself only sealed (AES-GCM under the master key, bound to the tenant). A
-- discarded letter keeps its row, without the sealed event, until retention removes it.
-- Times are unix microseconds.
CREATE TABLE dead_letters (
	tenant     TEXT    NOT NULL,
	id         TEXT    NOT NULL,
	event_id   TEXT    NOT NULL DEFAULT '',
	integrator TEXT    NOT NULL DEFAULT '',
	flow       TEXT    NOT NULL DEFAULT '',
	entity     TEXT    NOT NULL DEFAULT '',
	source_key TEXT    NOT NULL DEFAULT '',
	stage      TEXT    NOT NULL DEFAULT '',
	code       TEXT    NOT NULL DEFAULT '',
	reason     TEXT    NOT NULL DEFAULT '',
	attempts   INTEGER NOT NULL DEFAULT 0,
	dead_at    INTEGER NOT NULL,
	sealed     TEXT    NOT NULL DEFAULT '',
	state      TEXT    NOT NULL CHECK (state IN ('open', 'replayed', 'discarded')),
	replays    INTEGER NOT NULL DEFAULT 0,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (tenant, id)
) STRICT;

-- Lists are a tenant's newest first; retention deletes a tenant's oldest.
CREATE INDEX dead_letters_by_time ON dead_letters (tenant, dead_at, id);
