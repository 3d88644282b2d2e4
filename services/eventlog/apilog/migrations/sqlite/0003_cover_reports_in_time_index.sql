-- As on PostgreSQL: the reports read every record of a tenant in a range of days, so the time
-- index also carries the columns they read, and they never visit the table. SQLite has no
-- INCLUDE: the columns follow the page-order keys (tenant, logged_at, event_id, flow), which
-- stay a prefix, so QueryLogs still reads its pages off this index. It replaces the old index.
CREATE INDEX api_log_records_by_time_covering ON api_log_records
	(tenant, logged_at, event_id, flow, integrator, entity, source_endpoint, action, status, duration_ns);
DROP INDEX api_log_records_by_time;
