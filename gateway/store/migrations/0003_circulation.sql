-- Circulation: applications for grants, data products and their versions, closed billing
-- periods with their invoices, and credit notes. Portable SQL for SQLite and PostgreSQL.

-- A requester's request for a grant on a dataset (ad-hoc queries) or on a product. It becomes
-- a grant once the bureau approved it and, where the policy asks, the source co-signed.
CREATE TABLE applications (
    application_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations (org_id),
    client_id TEXT NOT NULL,
    dataset TEXT NOT NULL,
    product_id TEXT,
    purpose TEXT NOT NULL,
    epsilon_requested_nano BIGINT NOT NULL CHECK (epsilon_requested_nano > 0),
    valid_until_requested TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'closed')),
    needs_cosign INTEGER NOT NULL CHECK (needs_cosign IN (0, 1)),
    bureau_by TEXT,
    bureau_at TEXT,
    epsilon_approved_nano BIGINT CHECK (epsilon_approved_nano > 0),
    valid_until TEXT,
    cosign_by TEXT,
    cosign_at TEXT,
    decided_reason TEXT,
    grant_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX applications_by_org ON applications (org_id, created_at);
CREATE INDEX applications_by_dataset ON applications (dataset, status);

-- A product belongs to one merchant and reads one dataset; its versions are immutable once
-- submitted, and at most one is published at a time.
CREATE TABLE products (
    product_id TEXT PRIMARY KEY,
    merchant_org TEXT NOT NULL REFERENCES organisations (org_id),
    dataset TEXT NOT NULL,
    published_version INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE product_versions (
    product_id TEXT NOT NULL REFERENCES products (product_id),
    version INTEGER NOT NULL CHECK (version >= 1),
    status TEXT NOT NULL CHECK (status IN ('draft', 'submitted', 'published', 'superseded', 'rejected', 'discarded')),
    definition TEXT NOT NULL,
    definition_hash TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    submitted_at TEXT,
    decided_by TEXT,
    decided_at TEXT,
    reason TEXT,
    PRIMARY KEY (product_id, version)
);
CREATE INDEX product_versions_by_status ON product_versions (status);

-- A period is closed once: every usage record and credit note committed before its end and
-- not yet on an invoice is assigned to it, and each requester's invoice is stored as bytes.
CREATE TABLE billing_periods (
    period TEXT PRIMARY KEY,
    closed_at TEXT NOT NULL,
    closed_by TEXT NOT NULL,
    items BIGINT NOT NULL
);

CREATE TABLE invoice_items (
    item_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('usage', 'credit')),
    org_id TEXT NOT NULL,
    period TEXT NOT NULL
);
CREATE INDEX invoice_items_by_period ON invoice_items (period, org_id);

CREATE TABLE invoices (
    org_id TEXT NOT NULL,
    period TEXT NOT NULL,
    body TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, period)
);

CREATE TABLE credit_notes (
    credit_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations (org_id),
    dataset TEXT NOT NULL,
    product_id TEXT,
    refers_to_period TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    currency TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    merchant_org TEXT,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX credit_notes_by_org ON credit_notes (org_id, created_at);

-- Closing a period looks for records committed before its end that no invoice holds yet.
CREATE INDEX usage_by_commit_time ON usage_records (committed_at);
