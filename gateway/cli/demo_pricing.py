"""The demo county's prices under the public-data rules: the bureau's fee caps (with registration
codes and scenarios), the registrations of its datasets and products under the same codes, the
year's allowed revenue and one data voucher. Seeded once, as the bureau would set them; a restart
keeps whatever is in the store."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from gateway.core.pricing import Cap
from gateway.core.settlement import VoucherScope
from gateway.service.registration import record_tx as record_registration
from gateway.store import pricing as store_pricing
from gateway.store import registrations as store_registrations
from gateway.store import vouchers as store_vouchers
from gateway.store.db import Store, Tx

ACTOR = "system:demo"
INCLUSIVE_FINANCE = "inclusive-finance"
# (subject, model, cap in fen, registration code, scenario)
CAPS: tuple[tuple[str, str, int, str, str | None], ...] = (
    ("dataset:residents", "per_call", 800, "DEMO-PD-2026-0001", INCLUSIVE_FINANCE),
    ("dataset:enterprises", "per_call", 500, "DEMO-PD-2026-0002", INCLUSIVE_FINANCE),
    ("dataset:vehicles", "per_call", 600, "DEMO-PD-2026-0003", None),
    ("dataset:social_insurance", "per_call", 1000, "DEMO-PD-2026-0004", None),
    ("product:income-by-township", "per_call", 1000, "DEMO-DP-2026-0001", INCLUSIVE_FINANCE),
    ("product:vehicle-values-by-type", "per_call", 800, "DEMO-DP-2026-0002", None),
)
ALLOWED_REVENUE_MINOR = 5_000_000  # ¥50,000 a year
VOUCHER_ID = "demo-voucher-1"
VOUCHER_ORG = "lingxi-rural-bank"
VOUCHER_MINOR = 20_000  # ¥200 from the county's digital-economy fund, for inclusive-finance use


def _seed(tx: Tx, year: str, currency: str) -> None:
    known = store_pricing.current_caps(tx)
    for subject, model, cap, code, scenario in CAPS:
        kind, _, ident = subject.partition(":")
        table, column = ("products", "product_id") if kind == "product" else ("datasets", "dataset")
        if tx.one(f"SELECT 1 FROM {table} WHERE {column} = ?", (ident,)) is None:
            continue
        if subject not in known:
            store_pricing.set_cap(tx, subject, Cap(model, cap, currency, code, scenario),
                                  "demo county: the bureau's fee cap", ACTOR)
        if store_registrations.get(tx, subject) is None:
            record_registration(tx, subject, {"code": code, "note": "demo county: registered"}, ACTOR)
    if store_pricing.allowed(tx, year) is None and not tx.one("SELECT 1 FROM billing_periods WHERE period = ?",
                                                              (f"{year}-12",)):
        store_pricing.set_allowed(tx, year, ALLOWED_REVENUE_MINOR, currency, "demo county: the year's allowance",
                                  ACTOR)
    if store_vouchers.get(tx, VOUCHER_ID) is None:
        store_vouchers.issue(tx, VOUCHER_ID, VOUCHER_ORG, VOUCHER_MINOR, currency, f"{year}-01-01", f"{year}-12-31",
                             VoucherScope(scenario=INCLUSIVE_FINANCE), "county digital-economy special fund",
                             "demo county: inclusive-finance voucher", ACTOR)


def seed_demo_pricing(store: Store, currency: str = "CNY") -> None:
    store.run_sync(_seed, str(datetime.now(UTC).year), currency)


def trial_end(months: int = 3) -> str:
    """The last day of the month `months` ahead: the demo product's trial price runs until then."""
    now = datetime.now(UTC)
    years, month = divmod(now.month + months, 12)  # the month after the trial's, 0-based
    return (date(now.year + years, month + 1, 1) - timedelta(days=1)).isoformat()
