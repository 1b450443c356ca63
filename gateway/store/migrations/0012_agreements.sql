-- Authorisation agreements (issue 16 point 1): every grant and product stands on one. Portable
-- SQL for SQLite and PostgreSQL.

-- An agreement between an authorising body and an operator, recorded by the bureau: its term in
-- county days (starts_on .. ends_on) and as UTC instants (starts_at, ends_at: the end of the last
-- day), its duties and exit terms, and the SHA-256 of the signed document. `ended` by the bureau
-- or when its term passed (the scheduled sweep); an end is final.
CREATE TABLE agreements (
    agreement_id TEXT PRIMARY KEY,
    authorising_body TEXT NOT NULL,
    operator TEXT NOT NULL,
    starts_on TEXT NOT NULL,
    ends_on TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    duties TEXT NOT NULL,
    exit_terms TEXT NOT NULL,
    document_sha256 TEXT NOT NULL CHECK (length(document_sha256) = 64),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'ended')),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    ended_by TEXT,
    ended_at TEXT,
    end_reason TEXT,
    CHECK (starts_at < ends_at)
);
CREATE INDEX agreements_in_force ON agreements (status, ends_at);

-- What an agreement covers: its datasets (kind 'dataset') and products (kind 'product').
CREATE TABLE agreement_scope (
    agreement_id TEXT NOT NULL REFERENCES agreements (agreement_id),
    kind TEXT NOT NULL CHECK (kind IN ('dataset', 'product')),
    subject TEXT NOT NULL,
    PRIMARY KEY (agreement_id, kind, subject)
);
CREATE INDEX agreement_scope_by_subject ON agreement_scope (kind, subject);

-- What stands on an agreement: a grant, a product, and an application the bureau approved under
-- one (its grant takes the agreement when it is made). NULL on what was made before agreements.
ALTER TABLE grants ADD COLUMN agreement_id TEXT REFERENCES agreements (agreement_id);
ALTER TABLE products ADD COLUMN agreement_id TEXT REFERENCES agreements (agreement_id);
ALTER TABLE applications ADD COLUMN agreement_id TEXT REFERENCES agreements (agreement_id);
CREATE INDEX grants_by_agreement ON grants (agreement_id);
CREATE INDEX products_by_agreement ON products (agreement_id);
CREATE INDEX applications_by_agreement ON applications (agreement_id);
