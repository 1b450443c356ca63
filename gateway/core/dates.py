"""Expiry dates as people write them, read into one UTC moment, within a sane window.

`2026-12-31` (a date alone) means the end of that day in the county's time zone (Asia/Shanghai
by default): the grant holds through the 31st and ends at midnight, local time. A time with an
offset (`2026-12-31T18:00:00+08:00`, or `Z`) is that instant; a time without one is UTC. Any
date before today or more than `MAX_YEARS_AHEAD` years ahead is a 400 naming the field — never
a conversion that overflows (`0001-01-01T00:00:00+00:01`, `9999-12-31T23:59:59-01:00`).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.errors import InvalidRequest

MAX_YEARS_AHEAD = 50
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _refuse(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{field} {message}", extra={"field": field})


def parse_expiry(value: Any, zone: ZoneInfo, now: datetime, field: str = "valid_until") -> datetime:
    """The UTC instant an expiry names, or a 400 naming `field`."""
    if not isinstance(value, str) or len(value) > 64:
        raise _refuse(field, "must be an ISO 8601 date (YYYY-MM-DD) or date and time")
    years = (now.year - 1, now.year + MAX_YEARS_AHEAD + 1)  # checked before any arithmetic on it
    try:
        if _DATE_ONLY.match(value):
            day = date.fromisoformat(value)
            if not years[0] <= day.year <= years[1]:
                raise _refuse(field, f"must lie between today and {MAX_YEARS_AHEAD} years ahead")
            moment = datetime.combine(day + timedelta(days=1), time(), zone)  # the end of that day, locally
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if not years[0] <= moment.year <= years[1]:
                raise _refuse(field, f"must lie between today and {MAX_YEARS_AHEAD} years ahead")
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except ValueError:
        raise _refuse(field, "must be an ISO 8601 date (YYYY-MM-DD) or date and time") from None
    moment = moment.astimezone(UTC)
    if moment <= now:
        raise _refuse(field, "must lie in the future")
    if moment > now + timedelta(days=round(365.25 * MAX_YEARS_AHEAD)):
        raise _refuse(field, f"must lie between today and {MAX_YEARS_AHEAD} years ahead")
    return moment
