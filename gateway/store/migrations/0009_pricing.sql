-- Prices under the public-data rules: purpose classes, fee caps, subscriptions, allowed
-- revenue and its carried excess, data vouchers and their redemptions. Portable SQL.

-- The class an application states, the one the bureau approved, and the grant's: calls under a
-- public class are priced 0 and reported apart.
ALTER TABLE applications ADD COLUMN purpose_class TEXT NOT NULL DEFAULT 'industry'
    CHECK (purpose_class IN ('public_governance', 'public_interest', 'industry'));
ALTER TABLE applications ADD COLUMN purpose_class_approved TEXT
    CHECK (purpose_class_approved IN ('public_governance', 'public_interest', 'industry'));
ALTER TABLE grants ADD COLUMN purpose_class TEXT NOT NULL DEFAULT 'industry'
    CHECK (purpose_class IN ('public_governance', 'public_interest', 'industry'));
ALTER TABLE usage_records ADD COLUMN purpose_class TEXT NOT NULL DEFAULT 'industry'
    CHECK (purpose_class IN ('public_governance', 'public_interest', 'industry'));

-- Every fee cap the bureau set, on 'dataset:<id>' or 'product:<id>'; the latest is in force.
CREATE TABLE price_caps (
    cap_id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    model TEXT NOT NULL CHECK (model IN ('per_call', 'per_month', 'per_cell')),
    cap_minor BIGINT NOT NULL CHECK (cap_minor >= 0),
    currency TEXT NOT NULL,
    registration_code TEXT,
    scenario TEXT,
    reason TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at TEXT NOT NULL
);
CREATE INDEX price_caps_by_subject ON price_caps (subject, set_at);

-- The first call of a month on a per_month subject opens the organisation's subscription and
-- carries the fee; the primary key makes two concurrent first calls one.
CREATE TABLE price_subscriptions (
    org_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    period TEXT NOT NULL,
    usage_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, subject, period)
);

-- The maximum allowed revenue of a year, set by the bureau.
CREATE TABLE allowed_revenue (
    year TEXT PRIMARY KEY,
    allowed_minor BIGINT NOT NULL CHECK (allowed_minor >= 0),
    currency TEXT NOT NULL,
    reason TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at TEXT NOT NULL
);

-- A year's excess credited on the invoice of `to_period`, found when `from_period` closed.
CREATE TABLE revenue_carries (
    carry_id TEXT PRIMARY KEY,
    year TEXT NOT NULL,
    from_period TEXT NOT NULL,
    to_period TEXT NOT NULL,
    org_id TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    currency TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX revenue_carries_by_target ON revenue_carries (to_period, org_id);
CREATE INDEX revenue_carries_by_year ON revenue_carries (year);

-- Data vouchers (数据券): the balance only goes down, never below zero.
CREATE TABLE vouchers (
    voucher_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations (org_id),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    balance_minor BIGINT NOT NULL CHECK (balance_minor >= 0),
    currency TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    scope TEXT NOT NULL,
    fund TEXT NOT NULL,
    note TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    CHECK (balance_minor <= amount_minor),
    CHECK (valid_from <= valid_until)
);
CREATE INDEX vouchers_by_org ON vouchers (org_id, valid_until);

-- One redemption per voucher and invoice: an invoice never redeems a voucher twice.
CREATE TABLE voucher_redemptions (
    voucher_id TEXT NOT NULL REFERENCES vouchers (voucher_id),
    org_id TEXT NOT NULL,
    period TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    created_at TEXT NOT NULL,
    PRIMARY KEY (voucher_id, org_id, period)
);
CREATE INDEX voucher_redemptions_by_period ON voucher_redemptions (period, org_id);
