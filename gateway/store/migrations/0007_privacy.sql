-- Issue 11: delta budgeted beside epsilon on every account, and releases kept as answered.
-- Portable SQL for SQLite and PostgreSQL (both accept a CHECK naming other columns on ADD COLUMN).
--
-- Delta is kept in atto-units (10^-18): the policy's smallest delta is 1e-12, so every delta a
-- request may carry, with six more significant digits, is an exact integer, and a cap of 1
-- (delta never reaches it) is 10^18, inside a BIGINT. Nano-units would round 1e-12 up a
-- thousandfold. Rows written before this migration spent no delta: they read 0.

ALTER TABLE budget_accounts ADD COLUMN delta_cap_atto BIGINT NOT NULL DEFAULT 0 CHECK (delta_cap_atto >= 0);
ALTER TABLE budget_accounts ADD COLUMN delta_reserved_atto BIGINT NOT NULL DEFAULT 0 CHECK (delta_reserved_atto >= 0);
-- A charge is one conditional update; this CHECK is the last line of defence, as for epsilon.
ALTER TABLE budget_accounts ADD COLUMN delta_spent_atto BIGINT NOT NULL DEFAULT 0
    CHECK (delta_spent_atto >= 0 AND delta_spent_atto + delta_reserved_atto <= delta_cap_atto);

ALTER TABLE queries ADD COLUMN delta_atto BIGINT NOT NULL DEFAULT 0 CHECK (delta_atto >= 0);
ALTER TABLE releases ADD COLUMN delta_atto BIGINT NOT NULL DEFAULT 0 CHECK (delta_atto >= 0);
ALTER TABLE usage_records ADD COLUMN delta_atto BIGINT NOT NULL DEFAULT 0 CHECK (delta_atto >= 0);

-- The answer's columns, rows and accuracy exactly as first sent (aliases, order, LIMIT applied,
-- no helper count): what GET /v1/queries/{id} serves. NULL for releases stored before.
ALTER TABLE releases ADD COLUMN answer TEXT;
