-- One integrator token per integrator, stored only as its hash (hex SHA-256): the token itself
-- is shown once when it is made and kept nowhere. created_at is unix microseconds.
CREATE TABLE tokens (
	hash       TEXT    PRIMARY KEY,
	tenant     TEXT    NOT NULL,
	integrator TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	UNIQUE (tenant, integrator)
) STRICT;
