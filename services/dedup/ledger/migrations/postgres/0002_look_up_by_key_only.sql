-- The lookup and the confirmation run on every batch as prepared statements, and PostgreSQL
-- keeps the generic plan a prepared statement makes once it has run five times: made while the
-- ledger was tiny, that plan hashes a sequential scan of the whole table, and keeps doing so
-- when the table has grown to millions of rows (until an ANALYZE happens to replan it). Even a
-- plan made for the grown table hashes a scan of it for a batch of 500 keys, as the planner
-- prices 500 probes of the primary key above one scan. The ledger is only ever read by key, so
-- these functions plan their statement on each call with nothing but probes of the primary key
-- allowed: a batch costs one probe per key, whatever the ledger's size. (A function with SET
-- clauses is never inlined, so the settings hold for its statement and for nothing else.)
CREATE FUNCTION ledger_lookup(tenants text[], flows text[], source_keys text[])
RETURNS TABLE (tenant text, flow text, source_key text, target_id text, content_hash text,
               source_version bigint, state text, last_event_id text, last_action text,
               updated_at timestamptz)
LANGUAGE sql STABLE
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $fn$
SELECT l.tenant, l.flow, l.source_key, l.target_id, l.content_hash, l.source_version,
       l.state, l.last_event_id, l.last_action, l.updated_at
FROM unnest(tenants, flows, source_keys) AS k(tenant, flow, source_key)
JOIN ledger_entries l ON l.tenant = k.tenant AND l.flow = k.flow AND l.source_key = k.source_key
$fn$;

-- ledger_confirm sets the state (and the target id, when one is given) of the entries whose
-- last event is the confirmed one; the last confirmation of a key wins. It returns how many
-- entries changed: the final condition skips rows that already hold the confirmed values, so a
-- redelivered confirmation counts as no change.
CREATE FUNCTION ledger_confirm(tenants text[], flows text[], source_keys text[], event_ids text[],
                               states text[], target_ids text[], stamp timestamptz)
RETURNS bigint
LANGUAGE sql VOLATILE
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $fn$
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
SELECT count(*) FROM changed
$fn$;
