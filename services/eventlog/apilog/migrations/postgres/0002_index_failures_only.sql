-- Most records are successes; an index of every record by status costs every insert and
-- serves only failure queries well. Index failures alone: a failure query reads this partial
-- index, a success query reads the time index and skips the rare failures.
DROP INDEX api_log_records_by_status;
CREATE INDEX api_log_records_failures ON api_log_records (tenant, logged_at, event_id, flow) WHERE status = 'failure';
