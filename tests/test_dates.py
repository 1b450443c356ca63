"""Expiry dates (issue 19 point 9): calendar edges are a 400 naming the field, never a 500; a date
alone is the end of that day in the county's time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.core.dates import parse_expiry
from gateway.errors import InvalidRequest

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)


def test_a_date_alone_is_the_end_of_that_day_in_shanghai() -> None:
    assert parse_expiry("2026-12-31", SHANGHAI, NOW) == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    # NOW is midnight in Shanghai, 8 December: that day holds until the next midnight there,
    # while the 7th (still the 7th in UTC) has just ended.
    assert parse_expiry("2026-12-08", SHANGHAI, NOW) == datetime(2026, 12, 8, 16, 0, tzinfo=UTC)
    with pytest.raises(InvalidRequest):
        parse_expiry("2026-12-07", SHANGHAI, NOW)


def test_times_keep_their_offset_and_bare_times_are_utc() -> None:
    assert parse_expiry("2027-01-01T08:00:00+08:00", SHANGHAI, NOW) == datetime(2027, 1, 1, 0, 0, tzinfo=UTC)
    assert parse_expiry("2027-01-01T08:00:00Z", SHANGHAI, NOW) == datetime(2027, 1, 1, 8, 0, tzinfo=UTC)
    assert parse_expiry("2027-01-01T08:00:00", SHANGHAI, NOW) == datetime(2027, 1, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("value", [
    "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-01:00", "9999-12-31", "0001-01-01", "2200-01-01",
    "2000-01-01", "2026-12-01", "2026-02-30", "tomorrow", "", "2026-12-31T25:00:00", 20261231, None, "9" * 100,
])
def test_edges_are_a_400_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_expiry(value, SHANGHAI, NOW)
    assert refused.value.status == 400 and refused.value.problem()["field"] == "valid_until"
