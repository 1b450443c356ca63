"""Exact privacy-loss arithmetic: epsilon in nano-units, delta in atto-units, periods, splits.

Budgets are kept like money (R-BU-04): a decimal epsilon from a request or a policy becomes
an integer count of nano-epsilon, rounded up, so that the sum of charges never passes a cap
because of rounding. Delta (R-DP-17) is counted in atto-units (10^-18): the smallest delta a
query may carry is 1e-12 (`checks.MIN_DELTA`), so every delta a request may send, with six more
significant digits, is an exact integer, and a cap of 1 is 10^18, which a BIGINT holds; in
nano-units 1e-12 would be charged as 1e-9, a thousandfold. Periods are calendar months in the
county's time zone.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

NANO = 10**9
ATTO = 10**18
_PERIOD_FORMAT = "%Y-%m"


def to_nano(eps: Decimal | str | int) -> int:
    """Epsilon as an integer count of nano-units, rounded up (R-BU-04)."""
    return _units(eps, NANO)


def to_atto(delta: Decimal | str | int) -> int:
    """Delta as an integer count of atto-units (10^-18), rounded up (R-BU-04, R-DP-17)."""
    return _units(delta, ATTO)


def _units(loss: Decimal | str | int, scale: int) -> int:
    try:
        value = Decimal(loss)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"not a decimal number: {loss!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"privacy loss must be a finite, non-negative number: {loss!r}")
    return int((value * scale).to_integral_value(rounding=ROUND_CEILING))


@functools.lru_cache(maxsize=1024)  # pure, and called for every figure of every answer
def from_nano(n: int) -> Decimal:
    """Nano-units back to an exact Decimal, without trailing zeros or an exponent."""
    value = Decimal(n).scaleb(-9).normalize()
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value  # type: ignore[operator]


def nano_to_float(n: int) -> float:
    """For JSON answers only; the ledger never computes with floats."""
    return float(from_nano(n))


def from_atto(n: int) -> Decimal:
    """Atto-units back to an exact Decimal (1000 -> 1E-15)."""
    return Decimal(n).scaleb(-18).normalize() if n else Decimal(0)


def atto_to_float(n: int) -> float:
    """For JSON answers only: 1e-08, never a rounded 0."""
    return float(from_atto(n))


def split_epsilon(total_nano: int, parts: int) -> tuple[int, ...]:
    """An even, deterministic split of a charge over `parts` mechanisms; sums to <= total.

    Any remainder (less than `parts` nano-units) is left unspent rather than given to one
    part, so every part gets the same loss and the noise scales stay equal.
    """
    if parts < 1:
        raise ValueError("an epsilon split needs at least one part")
    if total_nano < 0:
        raise ValueError("an epsilon split needs a non-negative total")
    return (total_nano // parts,) * parts


def period_of(ts: datetime, zone: ZoneInfo) -> str:
    """The budget period ("YYYY-MM") holding an aware timestamp, in the county's zone."""
    if ts.tzinfo is None:
        raise ValueError("period_of needs an aware timestamp")
    return ts.astimezone(zone).strftime(_PERIOD_FORMAT)


def period_at(epoch_seconds: float, zone: ZoneInfo) -> str:
    """period_of for a POSIX time, worked out once per UTC minute: zone offsets are whole
    minutes, so no local month starts inside one (saves a zone conversion per call)."""
    return _period_of_minute(int(epoch_seconds // 60), zone)


@functools.lru_cache(maxsize=16)
def _period_of_minute(minute: int, zone: ZoneInfo) -> str:
    return period_of(datetime.fromtimestamp(minute * 60, UTC), zone)


def next_period_start(period: str) -> str:
    """The day a period's budgets renew: the first of the next month ("2026-12" -> "2027-01-01")."""
    year, month = (int(p) for p in period.split("-"))
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return f"{year:04d}-{month:02d}-01"


def period_bounds(period: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a period in UTC: local midnight of the first day of two months."""
    try:
        first = datetime.strptime(period, _PERIOD_FORMAT)
    except ValueError:
        raise ValueError(f"a period is written YYYY-MM, not {period!r}") from None
    if first.strftime(_PERIOD_FORMAT) != period:
        raise ValueError(f"a period is written YYYY-MM, not {period!r}")
    year, month = (first.year + 1, 1) if first.month == 12 else (first.year, first.month + 1)
    start = first.replace(tzinfo=zone)
    end = datetime(year, month, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


# Budget accounts, one row per account and period in the ledger. Their names are built here only.
def grant_account(org_id: str, dataset: str) -> str:
    """A requester's monthly account for one dataset (its grants' limit is the cap)."""
    return f"grant:{org_id}:{dataset}"


def pool_account(pool: str) -> str:
    """The monthly account of every dataset about the same people (the pool's global cap)."""
    return f"pool:{pool}"


def pool_lifetime_account(pool: str) -> str:
    """The pool's account that never renews (period LIFETIME_PERIOD)."""
    return f"pool-lifetime:{pool}"


# The epsilon cap of a lifetime account whose members cap only its delta: never reached (it is
# 4.6e9 epsilon), and inside a BIGINT. Every account has both figures; this one limits delta only.
NO_EPSILON_CAP = 2**62


def is_lifetime_account(name: str) -> bool:
    return name.startswith("pool-lifetime:")


def budget_line(dataset: str, period: str, cap_nano: int, spent_nano: int, reserved_nano: int,
                delta: tuple[int, int, int] = (0, 0, 0)) -> dict[str, object]:
    """What a requester is shown of one account: the limit, what is spent, what remains, for
    epsilon and for delta (`delta` is its cap, spent and reserved in atto-units).

    Remaining is never negative: a cap lowered below what was already spent shows 0 left.
    """
    delta_cap, delta_spent, delta_reserved = delta
    return {"dataset": dataset, "period": period, "epsilon_limit": nano_to_float(cap_nano),
            "epsilon_spent": nano_to_float(spent_nano),
            "epsilon_remaining": nano_to_float(max(cap_nano - spent_nano - reserved_nano, 0)),
            "delta_limit": atto_to_float(delta_cap), "delta_spent": atto_to_float(delta_spent),
            "delta_remaining": atto_to_float(max(delta_cap - delta_spent - delta_reserved, 0))}
