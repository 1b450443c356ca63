-- Faults survived (issue 17): the periodic sweep of what an outage left half-done reads running
-- idempotency claims by age, and a commit retried after a lost acknowledgement finds its usage
-- record by query.
CREATE INDEX idempotency_running ON idempotency_keys (created_at) WHERE state = 'running';
CREATE INDEX usage_by_query ON usage_records (query_id);

-- Rate limits shared by every replica: one token bucket per client (or client and dataset),
-- refilled continuously; replicas take tokens a few at a time (gateway/http/shared_limits.py).
CREATE TABLE rate_buckets (
    bucket TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL
);
