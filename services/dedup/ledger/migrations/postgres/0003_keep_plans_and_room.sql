-- The functions of migration 0002 were SQL functions, which PostgreSQL plans again on every
-- call: for a batch of a few dozen keys, planning cost as much as the probes. In PL/pgSQL the
-- statement's plan is kept for the session, and it is still made under the function's SET
-- clauses, so it still probes the primary key and nothing else (TestPostgresPlansProbeByKey).
CREATE OR REPLACE FUNCTION ledger_lookup(tenants text[], flows text[], source_keys text[])
RETURNS TABLE (tenant text, flow text, source_key text, target_id text, content_hash text,
               source_version bigint, state text, last_event_id text, last_action text,
               updated_at timestamptz)
LANGUAGE plpgsql STABLE
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $fn$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	SELECT l.tenant, l.flow, l.source_key, l.target_id, l.content_hash, l.source_version,
	       l.state, l.last_event_id, l.last_action, l.updated_at
	FROM unnest(tenants, flows, source_keys) AS k(tenant, flow, source_key)
	JOIN ledger_entries l ON l.tenant = k.tenant AND l.flow = k.flow AND l.source_key = k.source_key;
END
$fn$;

CREATE OR REPLACE FUNCTION ledger_confirm(tenants text[], flows text[], source_keys text[], event_ids text[],
                                          states text[], target_ids text[], stamp timestamptz)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $fn$
#variable_conflict use_column
DECLARE
	n bigint;
BEGIN
	WITH changed AS (
		UPDATE ledger_entries l SET
			state      = c.state,
			target_id  = CASE WHEN c.target_id = '' THEN l.target_id ELSE c.target_id END,
			updated_at = stamp
		FROM (
			SELECT DISTINCT ON (c.tenant, c.flow, c.source_key) c.tenant, c.flow, c.source_key, c.event_id, c.state, c.target_id
			FROM unnest(tenants, flows, source_keys, event_ids, states, target_ids)
			     WITH ORDINALITY AS c(tenant, flow, source_key, event_id, state, target_id, ord)
			ORDER BY c.tenant, c.flow, c.source_key, c.ord DESC
		) c
		WHERE l.tenant = c.tenant AND l.flow = c.flow AND l.source_key = c.source_key
		  AND l.last_event_id = c.event_id
		  AND (l.state <> c.state OR (c.target_id <> '' AND l.target_id <> c.target_id))
		RETURNING 1
	)
	SELECT count(*) INTO n FROM changed;
	RETURN n;
END
$fn$;

-- Every entry is written twice: pending when its push is decided, applied when the target
-- has it. Room on each page lets the second write stay on the page without touching the
-- primary key (a HOT update: no indexed column changes). It applies to pages written from now.
ALTER TABLE ledger_entries SET (fillfactor = 80);
