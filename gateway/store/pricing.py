"""Fee caps, per_month subscriptions and the allowed revenue of a year, in the store.

Setting a cap and changing a price take the same row lock (the dataset's or the product's row
on PostgreSQL; SQLite has one writer), so a cap and a price published at the same moment are
checked against each other in one order or the other, never past each other.
"""

from __future__ import annotations

import uuid
from typing import Any

from gateway.clock import utc_now_text
from gateway.core.pricing import Cap, PricePlan, over_cap, plan_of_policy, plan_of_product
from gateway.errors import Conflict, NotFound, PriceOverCap
from gateway.store import audit
from gateway.store import circulation as store_circulation
from gateway.store import products as store_products
from gateway.store.db import Tx

_CAP_COLUMNS = "cap_id, subject, model, cap_minor, currency, registration_code, scenario, reason, set_by, set_at"


def _cap(row: tuple[Any, ...]) -> Cap:
    return Cap(row[2], int(row[3]), row[4], row[5], row[6])


def cap_row(row: tuple[Any, ...]) -> dict[str, Any]:
    kind, _, ident = str(row[1]).partition(":")
    return {"cap_id": row[0], ("product_id" if kind == "product" else "dataset"): ident, "model": row[2],
            "cap_minor": int(row[3]), "currency": row[4], "registration_code": row[5], "scenario": row[6],
            "reason": row[7], "set_by": row[8], "set_at": row[9]}


def current_cap(tx: Tx, subject: str) -> Cap | None:
    row = tx.one(f"SELECT {_CAP_COLUMNS} FROM price_caps WHERE subject = ? ORDER BY set_at DESC, cap_id DESC "
                 "LIMIT 1", (subject,))
    return _cap(row) if row else None


def current_caps(tx: Tx) -> dict[str, Cap]:
    """subject -> the cap in force."""
    out: dict[str, Cap] = {}
    for row in tx.all(f"SELECT {_CAP_COLUMNS} FROM price_caps ORDER BY subject, set_at, cap_id"):
        out[row[1]] = _cap(row)
    return out


def cap_history(tx: Tx, until: str | None = None) -> list[dict[str, Any]]:
    """Every cap act (set before `until` when given), oldest first."""
    sql = f"SELECT {_CAP_COLUMNS} FROM price_caps"
    args: tuple[str, ...] = ()
    if until:
        sql, args = sql + " WHERE set_at < ?", (until,)
    return [cap_row(r) for r in tx.all(sql + " ORDER BY set_at, cap_id", args)]


def scenarios(tx: Tx) -> dict[str, frozenset[str]]:
    """subject -> the scenario it is registered under (its cap in force names it)."""
    return {subject: frozenset({cap.scenario}) for subject, cap in current_caps(tx).items() if cap.scenario}


def lock_subject(tx: Tx, subject: str) -> None:
    """The row a cap and a price change of the subject both lock (PostgreSQL); 404 if unknown."""
    kind, _, ident = subject.partition(":")
    table, column = ("products", "product_id") if kind == "product" else ("datasets", "dataset")
    lock = " FOR UPDATE" if tx.dialect == "postgres" else ""
    if tx.one(f"SELECT 1 FROM {table} WHERE {column} = ?{lock}", (ident,)) is None:
        raise NotFound(f"no {kind} {ident!r}")


def check_price(tx: Tx, subject: str, plan: PricePlan) -> None:
    """422 with every reason when the plan breaks the subject's cap in force."""
    reasons = over_cap(plan, current_cap(tx, subject))
    if reasons:
        raise PriceOverCap(f"the price of {subject} exceeds its fee cap: " + "; ".join(reasons), reasons)


def price_in_force(tx: Tx, subject: str) -> PricePlan | None:
    """The dataset's ad-hoc price under its current policy, or the product's published price."""
    kind, _, ident = subject.partition(":")
    if kind == "dataset":
        found = store_circulation.current_policy(tx, ident)
        return plan_of_policy(found[2]["pricing"]) if found else None
    product = store_products.get_product(tx, ident)
    if product is None or product.published_version is None:
        return None
    version = store_products.get_version(tx, ident, product.published_version)
    return plan_of_product(version.definition) if version else None


def set_cap(tx: Tx, subject: str, cap: Cap, reason: str, actor: str) -> dict[str, Any]:
    """The bureau's act: refused when the price in force would break the new cap."""
    lock_subject(tx, subject)
    current = price_in_force(tx, subject)
    if current is not None:
        reasons = over_cap(current, cap)
        if reasons:
            raise PriceOverCap(f"the price in force of {subject} would exceed the new cap: " + "; ".join(reasons),
                               reasons)
    now, cap_id = utc_now_text(), "cap-" + uuid.uuid4().hex[:16]
    tx.execute(f"INSERT INTO price_caps ({_CAP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (cap_id, subject, cap.model, cap.cap_minor, cap.currency, cap.registration_code, cap.scenario,
                reason, actor, now))
    audit.append(tx, "price_cap.set", actor, subject,
                 {"cap_id": cap_id, "model": cap.model, "cap_minor": cap.cap_minor, "currency": cap.currency,
                  "registration_code": cap.registration_code, "scenario": cap.scenario, "reason": reason})
    row = tx.one(f"SELECT {_CAP_COLUMNS} FROM price_caps WHERE cap_id = ?", (cap_id,))
    assert row is not None
    return cap_row(row)


def publish_product_within_cap(tx: Tx, product_id: str, version: int, actor: str) -> None:
    """Publication is a price change: the version's price must keep to the product's cap."""
    subject = f"product:{product_id}"
    lock_subject(tx, subject)
    found = store_products.get_version(tx, product_id, version)
    if found is not None:
        check_price(tx, subject, plan_of_product(found.definition))
    store_products.publish(tx, product_id, version, actor)


def publish_policy_within_cap(tx: Tx, dataset: str, owner: str, version: str, document: dict[str, Any],
                              actor: str) -> bool:
    """A new policy version is a price change of the dataset's ad-hoc queries."""
    subject = f"dataset:{dataset}"
    if tx.one("SELECT 1 FROM datasets WHERE dataset = ?", (dataset,)) is not None:
        lock_subject(tx, subject)
        check_price(tx, subject, plan_of_policy(document["pricing"]))
    return store_circulation.publish_policy(tx, dataset, owner, version, document, actor)


# ---------------------------------------------------------------- per_month subscriptions


def opens_month(tx: Tx, org_id: str, subject: str, period: str, usage_id: str) -> bool:
    """True for the call that opens the organisation's month on the subject (it bears the fee).

    An insert that does nothing on conflict: on PostgreSQL a second concurrent first call waits
    for the first one's commit and then finds the month open."""
    return tx.execute("INSERT INTO price_subscriptions (org_id, subject, period, usage_id, created_at) "
                      "VALUES (?, ?, ?, ?, ?) ON CONFLICT (org_id, subject, period) DO NOTHING",
                      (org_id, subject, period, usage_id, utc_now_text())) == 1


def month_is_open(tx: Tx, org_id: str, subject: str, period: str) -> bool:
    return tx.one("SELECT 1 FROM price_subscriptions WHERE org_id = ? AND subject = ? AND period = ?",
                  (org_id, subject, period)) is not None


# ---------------------------------------------------------------- allowed revenue


def allowed(tx: Tx, year: str) -> int | None:
    row = tx.one("SELECT allowed_minor FROM allowed_revenue WHERE year = ?", (year,))
    return int(row[0]) if row else None


def set_allowed(tx: Tx, year: str, allowed_minor: int, currency: str, reason: str, actor: str) -> str:
    """The bureau sets (or changes) a year's allowance while the year still has a period to close."""
    if tx.one("SELECT 1 FROM billing_periods WHERE period = ?", (f"{year}-12",)) is not None:
        raise Conflict(f"every period of {year} is closed; its allowed revenue can no longer change")
    now = utc_now_text()
    previous = allowed(tx, year)
    if previous is None:
        tx.execute("INSERT INTO allowed_revenue (year, allowed_minor, currency, reason, set_by, set_at) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (year, allowed_minor, currency, reason, actor, now))
    else:
        tx.execute("UPDATE allowed_revenue SET allowed_minor = ?, currency = ?, reason = ?, set_by = ?, set_at = ? "
                   "WHERE year = ?", (allowed_minor, currency, reason, actor, now, year))
    audit.append(tx, "allowed_revenue.set", actor, year,
                 {"allowed_minor": allowed_minor, "previous_minor": previous, "currency": currency, "reason": reason})
    return now
