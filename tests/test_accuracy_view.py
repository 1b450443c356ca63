"""How an answer shows a release's accuracy: per output column, and per row after ORDER BY/LIMIT."""

from __future__ import annotations

from decimal import Decimal

from gateway.core.accuracy import accuracy_view, stored_accuracy
from gateway.core.plan import Plan
from gateway.core.sql import parse_sql

COLUMNS = ["township", "count(*)", "mean(income)"]
ROWS = [["Chengguan", 900, 41000.0], ["Lingxi", 30, 39000.0], ["Baishi", 400, 52000.0]]
PER_ROW = [{"count(*)": 6.4, "mean(income)": 900.0}, {"count(*)": 6.4, "mean(income)": 30000.0},
           {"count(*)": 6.4, "mean(income)": 2100.0}]


def plan(sql: str) -> Plan:
    return parse_sql(sql, epsilon=Decimal(1))


def test_rows_follow_order_by_and_limit_under_output_names() -> None:
    stored = stored_accuracy({"count(*)": 6.4, "mean(income)": 30000.0}, PER_ROW)
    asked = plan("SELECT township, AVG(income) AS m, COUNT(*) AS n FROM residents GROUP BY township "
                 "ORDER BY n DESC LIMIT 2")
    view = accuracy_view(asked, COLUMNS, ROWS, stored, 0.05)
    assert view == {"alpha": 0.05, "columns": {"m": 30000.0, "n": 6.4},
                    "rows": [{"m": 900.0, "n": 6.4}, {"m": 2100.0, "n": 6.4}]}


def test_a_release_stored_without_rows_shows_the_widest_on_every_row() -> None:
    """Stored before per-row accuracy was kept: the column's widest half-width still bounds each row."""
    old = {"count(*)": 6.4, "mean(income)": 30000.0}
    view = accuracy_view(plan("SELECT township, AVG(income) AS m FROM residents GROUP BY township"),
                         COLUMNS, ROWS, old, 0.05)
    assert view["rows"] == [{"m": 30000.0}] * 3 and view["columns"] == {"m": 30000.0}
