-- One row per dead letter: what the bus knows of it in the clear, for listing and filtering,
-- and the event itself only sealed (AES-GCM under the master key, bound to the tenant). A
-- discarded letter keeps its row, without the sealed event, until retention removes it.
CREATE TABLE dead_letters (
	tenant     text COLLATE "C" NOT NULL,
	id         text COLLATE "C" NOT NULL,
	event_id   text             NOT NULL DEFAULT '',
	integrator text             NOT NULL DEFAULT '',
	flow       text             NOT NULL DEFAULT '',
	entity     text             NOT NULL DEFAULT '',
	source_key text             NOT NULL DEFAULT '',
	stage      text             NOT NULL DEFAULT '',
	code       text             NOT NULL DEFAULT '',
	reason     text             NOT NULL DEFAULT '',
	attempts   integer          NOT NULL DEFAULT 0,
	dead_at    timestamptz      NOT NULL,
	sealed     text             NOT NULL DEFAULT '',
	state      text             NOT NULL CHECK (state IN ('open', 'replayed', 'discarded')),
	replays    integer          NOT NULL DEFAULT 0,
	updated_at timestamptz      NOT NULL,
	PRIMARY KEY (tenant, id)
);

-- Lists are a tenant's newest first; retention deletes a tenant's oldest.
CREATE INDEX dead_letters_by_time ON dead_letters (tenant, dead_at, id);
