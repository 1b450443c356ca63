-- Registration codes (登记结果查询码, issue 16 point 2): the bureau's registration in force per
-- dataset or product. Portable SQL for SQLite and PostgreSQL; every change is in the audit log.

-- One row per subject ('dataset:<id>' or 'product:<id>'). A code names one subject only. For a
-- product, `registered_version` and `fingerprint` say what was registered (its version, SQL,
-- parameters and price): a product selling anything else needs registering again.
CREATE TABLE registrations (
    subject TEXT PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('registered', 'revoked')),
    registered_version INTEGER,
    fingerprint TEXT,
    note TEXT NOT NULL DEFAULT '',
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    CHECK (subject LIKE 'dataset:%' OR subject LIKE 'product:%'),
    CHECK ((registered_version IS NULL) = (fingerprint IS NULL))
);
