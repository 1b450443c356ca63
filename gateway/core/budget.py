"""Exact privacy-loss arithmetic (integer nano-epsilon) and the county's budget periods."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from zoneinfo import ZoneInfo

NANO = 10**9


def to_nano(eps: Decimal | str | int) -> int:
    """Epsilon as an integer count of nano-epsilon, rounded UP so that charges never undercount."""
    value = Decimal(eps) * NANO
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def from_nano(n: int) -> Decimal:
    return Decimal(n) / NANO


def nano_to_float(n: int) -> float:
    """For JSON answers only; the ledger never computes with floats."""
    return float(from_nano(n))


def period_of(moment: datetime, zone: ZoneInfo) -> str:
    """The budget period ("YYYY-MM"): the calendar month in the county's time zone."""
    return moment.astimezone(zone).strftime("%Y-%m")


def period_bounds(period: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a period in UTC."""
    year, month = (int(x) for x in period.split("-"))
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def split_epsilon(total_nano: int, parts: int) -> tuple[int, ...]:
    """Deterministic equal split, never summing to more than the total."""
    if parts <= 0:
        raise ValueError("parts must be positive")
    share = total_nano // parts
    return (share,) * parts
