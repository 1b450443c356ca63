-- Foundation and ledger: identity, signing keys, datasets and policies, grants, budgets,
-- queries (reservations), releases, usage, idempotency and the audit log.
-- Portable SQL for SQLite and PostgreSQL; times are UTC ISO-8601 text, which sorts.

CREATE TABLE organisations (
    org_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('requester', 'bureau', 'source', 'merchant', 'ops', 'supplier')),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at TEXT NOT NULL
);

CREATE TABLE clients (
    client_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations (org_id),
    secret_hash TEXT NOT NULL,
    roles TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at TEXT NOT NULL
);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    public_jwk TEXT NOT NULL,
    created_at TEXT NOT NULL,
    retire_at TEXT
);

CREATE TABLE policy_versions (
    version TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    document TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);

CREATE TABLE datasets (
    dataset TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'withdrawn')),
    policy_version TEXT NOT NULL REFERENCES policy_versions (version),
    updated_at TEXT NOT NULL
);

CREATE TABLE grants (
    grant_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations (org_id),
    dataset TEXT NOT NULL,
    product_id TEXT,
    epsilon_limit_nano BIGINT NOT NULL CHECK (epsilon_limit_nano >= 0),
    valid_from TEXT NOT NULL,
    valid_until TEXT,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked', 'ended')),
    created_at TEXT NOT NULL
);
CREATE INDEX grants_by_org ON grants (org_id, dataset);

-- One row per budget account and period: 'grant:<org>:<dataset>', 'pool:<pool>', or
-- 'pool-lifetime:<pool>' in the period 'all'.
-- A charge is one conditional update; the CHECK is the last line of defence.
CREATE TABLE budget_accounts (
    account TEXT NOT NULL,
    period TEXT NOT NULL,
    cap_nano BIGINT NOT NULL CHECK (cap_nano >= 0),
    spent_nano BIGINT NOT NULL DEFAULT 0 CHECK (spent_nano >= 0),
    reserved_nano BIGINT NOT NULL DEFAULT 0 CHECK (reserved_nano >= 0),
    PRIMARY KEY (account, period),
    CHECK (spent_nano + reserved_nano <= cap_nano)
);

CREATE TABLE queries (
    query_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    dataset TEXT NOT NULL,
    product_id TEXT,
    period TEXT NOT NULL,
    epsilon_nano BIGINT NOT NULL CHECK (epsilon_nano > 0),
    accounts TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('reserved', 'executing', 'committed', 'released', 'spent_no_release')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX queries_by_state ON queries (state, updated_at);

CREATE TABLE releases (
    query_id TEXT PRIMARY KEY REFERENCES queries (query_id),
    cache_key TEXT NOT NULL,
    org_id TEXT NOT NULL,
    dataset TEXT NOT NULL,
    product_id TEXT,
    plan_fingerprint TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    snapshot_id TEXT NOT NULL,
    period TEXT NOT NULL,
    epsilon_nano BIGINT NOT NULL,
    result TEXT NOT NULL,
    accuracy TEXT NOT NULL,
    release_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX releases_by_cache_key ON releases (cache_key);

CREATE TABLE usage_records (
    usage_id TEXT PRIMARY KEY,
    query_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    dataset TEXT NOT NULL,
    product_id TEXT,
    period TEXT NOT NULL,
    cached INTEGER NOT NULL CHECK (cached IN (0, 1)),
    epsilon_nano BIGINT NOT NULL CHECK (epsilon_nano >= 0),
    price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
    currency TEXT NOT NULL,
    price_version TEXT NOT NULL,
    committed_at TEXT NOT NULL
);
CREATE INDEX usage_by_org_period ON usage_records (org_id, period);
CREATE INDEX usage_by_period ON usage_records (period, committed_at);

CREATE TABLE idempotency_keys (
    org_id TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    query_id TEXT,
    state TEXT NOT NULL CHECK (state IN ('running', 'done')),
    status INTEGER,
    body TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (org_id, idem_key)
);
CREATE INDEX idempotency_by_expiry ON idempotency_keys (expires_at);

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY CHECK (seq >= 1),
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

-- The chain head, one row: the lock that keeps replicas from forking the chain (R-AD-02).
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
