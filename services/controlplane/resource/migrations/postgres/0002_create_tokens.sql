-- One integrator token per integrator, stored only as its hash (hex SHA-256): the token itself
-- is shown once when it is made and kept nowhere.
CREATE TABLE tokens (
	hash       text COLLATE "C" PRIMARY KEY,
	tenant     text COLLATE "C" NOT NULL,
	integrator text COLLATE "C" NOT NULL,
	created_at timestamptz      NOT NULL,
	UNIQUE (tenant, integrator)
);
