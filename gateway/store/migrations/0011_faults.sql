-- Faults survived (issue 17): the periodic sweep of what an outage left half-done reads running
-- idempotency claims by age, and a commit retried after a lost acknowledgement finds its usage
-- record by query.
CREATE INDEX idempotency_running ON idempotency_keys (created_at) WHERE state = 'running';
CREATE INDEX usage_by_query ON usage_records (query_id);
