-- People of the console: user accounts, their server-side sessions, failed sign-ins (for
-- throttling), and the reasons given when a dataset's status was changed from the console.
-- Portable SQL for SQLite and PostgreSQL; times are UTC ISO-8601 text, which sorts.

CREATE TABLE users (
    username TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    org_id TEXT NOT NULL REFERENCES organisations (org_id),
    roles TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    totp_secret TEXT,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    language TEXT CHECK (language IN ('zh-CN', 'en')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX users_by_org ON users (org_id);

-- The cookie holds a random token; only its SHA-256 is stored, so a copy of the store cannot
-- be replayed as a session. `stage` is 'password' while a TOTP code is still awaited.
CREATE TABLE console_sessions (
    session_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users (username),
    csrf_token TEXT NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('password', 'full')),
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE INDEX console_sessions_by_user ON console_sessions (username, ended_at);

-- One row per failed sign-in, keyed 'user:<name>' or 'addr:<address>'; rows older than the
-- throttling window are deleted as new ones arrive.
CREATE TABLE login_failures (
    failure_key TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX login_failures_by_key ON login_failures (failure_key, at);

-- The latest reason a dataset was suspended, resumed or withdrawn from the console, shown to
-- a requester whose query it refuses.
CREATE TABLE dataset_status_notes (
    dataset TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    at TEXT NOT NULL
);
