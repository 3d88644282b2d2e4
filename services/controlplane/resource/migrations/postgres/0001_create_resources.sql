-- One row per applied resource. spec is text, not jsonb: it holds the canonical JSON the store
-- compares byte for byte, and jsonb would reformat it. Names compare bytewise (COLLATE "C"),
-- as in SQLite, so that lists sort the same on both backends whatever the server's locale.
CREATE TABLE resources (
	kind       text COLLATE "C" NOT NULL,
	tenant     text COLLATE "C" NOT NULL,
	name       text COLLATE "C" NOT NULL,
	spec       text             NOT NULL,
	generation bigint           NOT NULL,
	created_at timestamptz      NOT NULL,
	updated_at timestamptz      NOT NULL,
	PRIMARY KEY (kind, tenant, name)
);
