-- Reports aggregate a tenant's records per integrator, flow, entity and UTC day, and reading
-- that off the records grows with the range: on 1,000,000 records (tools/logbench) a 7-day
-- report of the largest tenant took 152 ms, most of it sorting 91,000 records into rows, and a
-- 30-day report 1 s. A QueryLogs filter that matches nothing read the whole tenant (214 ms).
--
-- So the records are rolled up per day, in the transaction that writes them:
--   api_log_days        one row per tenant, UTC day, integrator, flow and entity: the counts a
--                       report shows, and a histogram of the durations (durations[b + 1]
--                       records fall in bucket b of api_log_duration_bucket). The histogram
--                       does not replace the exact percentiles: it says in which bucket the
--                       record at a rank lies, and the report then reads that bucket's few
--                       durations off api_log_records_by_day_duration (migration 0005).
--   api_log_day_errors  one row per distinct error code and reason of a day row's failures,
--                       so that the top codes and their first reason in byte order stay exact
--                       when a failure goes away (a retry replacing it, retention).
-- A row exists only while it counts records: the triggers delete it when it reaches zero, so
-- a day row also says "this combination has records on this day", which narrows a filtered
-- QueryLogs page to the days that hold matches, and skips the records when none do.
--
-- Statement triggers keep both exact whatever writes the records: COPY and INSERT add, DELETE
-- (retention, tenant erase) subtracts, and the UPDATE of INSERT … ON CONFLICT (a redelivered
-- record replaces the earlier one) subtracts the old values and adds the new ones, read from
-- the transition tables, so a replaced record is never counted twice. The store takes a
-- per-tenant advisory lock before it writes (see write in postgres.go): an upsert fires three
-- triggers, each locking rollup rows in key order, and two such transactions could otherwise
-- lock the same rows in opposite orders.

-- The duration buckets: below 2^10 ns (about 1 µs), then 8 buckets per power of two up to
-- 15 * 2^43 ns (about 37 hours), then everything above: 297 buckets, each closed one at most
-- 12.5% wide.
-- Integer bounds, so that a bucket is an exact range of durations.
CREATE FUNCTION api_log_duration_bounds() RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT array_agg((8 + step)::bigint << (power - 3) ORDER BY power, step)
	FROM generate_series(10, 46) AS power, generate_series(0, 7) AS step
$$;

-- The bucket of a duration: 0 below the first bound, b when bounds[b] <= duration < bounds[b + 1].
CREATE FUNCTION api_log_duration_bucket(duration_ns bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT width_bucket(duration_ns, api_log_duration_bounds())
$$;

-- api_log_histogram(buckets, n) is the histogram that counts n durations in bucket buckets[i]
-- for each i.
CREATE FUNCTION api_log_histogram(buckets integer[], n integer) RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
	histogram integer[] := array_fill(0, ARRAY[cardinality(api_log_duration_bounds()) + 1]);
BEGIN
	FOR i IN 1 .. cardinality(buckets) LOOP
		histogram[buckets[i] + 1] := histogram[buckets[i] + 1] + n;
	END LOOP;
	RETURN histogram;
END
$$;

-- api_log_histogram_sum adds two histograms. A loop that skips the empty buckets, five times
-- faster than summing unnest(a, b).
CREATE FUNCTION api_log_histogram_sum(a integer[], b integer[]) RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
	FOR i IN 1 .. cardinality(b) LOOP
		IF b[i] <> 0 THEN
			a[i] := a[i] + b[i];
		END IF;
	END LOOP;
	RETURN a;
END
$$;

-- An error's key in api_log_day_errors: a hash, because a reason (a target's answer) can be
-- longer than a B-tree key may be. Text holds no NUL, so the separator is unambiguous.
CREATE FUNCTION api_log_error_hash(error_code text, reason text) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT sha256(convert_to(error_code, 'UTF8') || '\x00'::bytea || convert_to(reason, 'UTF8'))
$$;

-- Today's rows are updated by every batch: room on their page keeps those updates HOT.
CREATE TABLE api_log_days (
	tenant     text COLLATE "C" NOT NULL,
	day        date             NOT NULL,
	integrator text COLLATE "C" NOT NULL,
	flow       text COLLATE "C" NOT NULL,
	entity     text COLLATE "C" NOT NULL,
	records    bigint           NOT NULL,
	created    bigint           NOT NULL,
	updated    bigint           NOT NULL,
	deleted    bigint           NOT NULL,
	skipped    bigint           NOT NULL,
	failed     bigint           NOT NULL,
	failures   bigint           NOT NULL,
	durations  integer[]        NOT NULL,
	PRIMARY KEY (tenant, day, integrator, flow, entity)
) WITH (fillfactor = 50);

CREATE TABLE api_log_day_errors (
	tenant     text COLLATE "C" NOT NULL,
	day        date             NOT NULL,
	integrator text COLLATE "C" NOT NULL,
	flow       text COLLATE "C" NOT NULL,
	entity     text COLLATE "C" NOT NULL,
	error_hash bytea            NOT NULL,
	error_code text COLLATE "C" NOT NULL,
	reason     text COLLATE "C" NOT NULL,
	failures   bigint           NOT NULL,
	PRIMARY KEY (tenant, day, integrator, flow, entity, error_hash)
);

-- api_log_roll_up(delta) applies the rows of the transition table "changed" to the
-- rollups, each counting delta: 1 for the rows an INSERT (or COPY) adds and for the new values
-- of an UPDATE, -1 for the rows a DELETE removes and for the old values of an UPDATE. Rows are
-- upserted in key order. The grouping columns compare bytewise (COLLATE "C"), as the rollups'
-- keys do.
CREATE FUNCTION api_log_roll_up() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
	delta       constant integer := TG_ARGV[0];
	tenants     text[];
	days        date[];
	integrators text[];
	flows       text[];
	entities    text[];
	hashes      bytea[];
BEGIN
	WITH upserted AS (
		INSERT INTO api_log_days AS d (tenant, day, integrator, flow, entity,
			records, created, updated, deleted, skipped, failed, failures, durations)
		SELECT tenant, (logged_at AT TIME ZONE 'UTC')::date, integrator COLLATE "C", flow, entity COLLATE "C",
			count(*) * delta,
			count(*) FILTER (WHERE action = 'created') * delta,
			count(*) FILTER (WHERE action = 'updated') * delta,
			count(*) FILTER (WHERE action = 'deleted') * delta,
			count(*) FILTER (WHERE action = 'skipped') * delta,
			count(*) FILTER (WHERE action = 'failed') * delta,
			count(*) FILTER (WHERE status = 'failure') * delta,
			api_log_histogram(array_agg(api_log_duration_bucket(duration_ns)), delta)
		FROM changed
		GROUP BY 1, 2, 3, 4, 5
		ORDER BY 1, 2, 3, 4, 5
		ON CONFLICT (tenant, day, integrator, flow, entity) DO UPDATE SET
			records   = d.records + excluded.records,
			created   = d.created + excluded.created,
			updated   = d.updated + excluded.updated,
			deleted   = d.deleted + excluded.deleted,
			skipped   = d.skipped + excluded.skipped,
			failed    = d.failed + excluded.failed,
			failures  = d.failures + excluded.failures,
			durations = api_log_histogram_sum(d.durations, excluded.durations)
		RETURNING tenant, day, integrator, flow, entity, records
	)
	SELECT array_agg(tenant), array_agg(day), array_agg(integrator), array_agg(flow), array_agg(entity)
	INTO tenants, days, integrators, flows, entities
	FROM upserted
	WHERE records = 0;
	IF tenants IS NOT NULL THEN
		DELETE FROM api_log_days AS d
		USING unnest(tenants, days, integrators, flows, entities) AS z(tenant, day, integrator, flow, entity)
		WHERE (d.tenant, d.day, d.integrator, d.flow, d.entity) = (z.tenant, z.day, z.integrator, z.flow, z.entity)
			AND d.records = 0;
	END IF;

	WITH upserted AS (
		INSERT INTO api_log_day_errors AS e (tenant, day, integrator, flow, entity, error_hash, error_code, reason, failures)
		SELECT tenant, (logged_at AT TIME ZONE 'UTC')::date, integrator COLLATE "C", flow, entity COLLATE "C",
			api_log_error_hash(error_code, reason), error_code, reason, count(*) * delta
		FROM changed
		WHERE status = 'failure'
		GROUP BY 1, 2, 3, 4, 5, 7, 8
		ORDER BY 1, 2, 3, 4, 5, 6
		ON CONFLICT (tenant, day, integrator, flow, entity, error_hash) DO UPDATE SET
			failures = e.failures + excluded.failures
		RETURNING tenant, day, integrator, flow, entity, error_hash, failures
	)
	SELECT array_agg(tenant), array_agg(day), array_agg(integrator), array_agg(flow), array_agg(entity), array_agg(error_hash)
	INTO tenants, days, integrators, flows, entities, hashes
	FROM upserted
	WHERE failures = 0;
	IF tenants IS NOT NULL THEN
		DELETE FROM api_log_day_errors AS e
		USING unnest(tenants, days, integrators, flows, entities, hashes) AS z(tenant, day, integrator, flow, entity, error_hash)
		WHERE (e.tenant, e.day, e.integrator, e.flow, e.entity, e.error_hash) = (z.tenant, z.day, z.integrator, z.flow, z.entity, z.error_hash)
			AND e.failures = 0;
	END IF;
	RETURN NULL;
END
$fn$;

-- An UPDATE fires two triggers, one for its old values and one for its new ones: each trigger
-- sees one transition table, named "changed" in all four, so that api_log_roll_up's
-- statements are the same (and PL/pgSQL plans them once per session). The triggers come
-- before the backfill: creating them locks the table against writes until this migration
-- commits, so the backfill sees every record and no record is missed or counted twice.
CREATE TRIGGER api_log_records_roll_up_inserted AFTER INSERT ON api_log_records
	REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION api_log_roll_up('1');
CREATE TRIGGER api_log_records_roll_up_replaced AFTER UPDATE ON api_log_records
	REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION api_log_roll_up('-1');
CREATE TRIGGER api_log_records_roll_up_replacing AFTER UPDATE ON api_log_records
	REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION api_log_roll_up('1');
CREATE TRIGGER api_log_records_roll_up_deleted AFTER DELETE ON api_log_records
	REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION api_log_roll_up('-1');

-- Roll up what is already logged (about 3 s per 1,000,000 records).
INSERT INTO api_log_days (tenant, day, integrator, flow, entity,
	records, created, updated, deleted, skipped, failed, failures, durations)
SELECT tenant, (logged_at AT TIME ZONE 'UTC')::date, integrator COLLATE "C", flow, entity COLLATE "C",
	count(*),
	count(*) FILTER (WHERE action = 'created'),
	count(*) FILTER (WHERE action = 'updated'),
	count(*) FILTER (WHERE action = 'deleted'),
	count(*) FILTER (WHERE action = 'skipped'),
	count(*) FILTER (WHERE action = 'failed'),
	count(*) FILTER (WHERE status = 'failure'),
	api_log_histogram(array_agg(api_log_duration_bucket(duration_ns)), 1)
FROM api_log_records
GROUP BY 1, 2, 3, 4, 5;

INSERT INTO api_log_day_errors (tenant, day, integrator, flow, entity, error_hash, error_code, reason, failures)
SELECT tenant, (logged_at AT TIME ZONE 'UTC')::date, integrator COLLATE "C", flow, entity COLLATE "C",
	api_log_error_hash(error_code, reason), error_code, reason, count(*)
FROM api_log_records
WHERE status = 'failure'
GROUP BY 1, 2, 3, 4, 5, 7, 8;
