-- Governance (issue 19): who can stop a product, what a co-signature was given over, and credit
-- notes held to the usage they correct. Portable SQL for SQLite and PostgreSQL.

-- The bureau's hold on a product: 'active' (sells while a version is published), 'suspended'
-- (stops selling until resumed) or 'retired' (its published version answers 410 until the bureau
-- publishes another).
ALTER TABLE products ADD COLUMN bureau_status TEXT NOT NULL DEFAULT 'active'
    CHECK (bureau_status IN ('active', 'suspended', 'retired'));

-- The terms (epsilon, expiry, purpose, subject) a source department co-signed, as canonical JSON:
-- an approval wider than them needs a new co-signature.
ALTER TABLE applications ADD COLUMN cosign_terms TEXT;

-- A credit note corrects invoiced usage: each allocation is the part of it credited against one
-- usage record, and the allocations of a record never pass what it was billed.
CREATE TABLE credit_allocations (
    credit_id TEXT NOT NULL REFERENCES credit_notes (credit_id),
    usage_id TEXT NOT NULL REFERENCES usage_records (usage_id),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    PRIMARY KEY (credit_id, usage_id)
);
CREATE INDEX credit_allocations_by_usage ON credit_allocations (usage_id);
