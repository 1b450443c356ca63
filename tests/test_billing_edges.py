"""Billing edges from the second probe (issue 19, also seen): every currency's total in the CSV."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

from gateway.core.billing import build_invoice, invoice_csv, invoice_json
from tests.test_billing import usage


def test_a_products_own_currency_has_its_total_row_in_the_csv() -> None:
    items = [usage(1), usage(2), replace(usage(3, product="fx-rates", price=700), currency="USD")]
    document = json.loads(invoice_json(build_invoice("bank", "2026-11", "closed", "CNY", items)))
    assert document["totals"] == {"CNY": 1000, "USD": 700}
    rows = list(csv.reader(io.StringIO(invoice_csv(document).decode())))
    totals = {row[10]: row[9] for row in rows if row[0] == "total"}
    assert totals == {"CNY": "1000", "USD": "700"}


def test_a_one_currency_csv_keeps_its_single_total_row() -> None:
    document = json.loads(invoice_json(build_invoice("bank", "2026-11", "closed", "CNY", [usage(1)])))
    rows = list(csv.reader(io.StringIO(invoice_csv(document).decode())))
    total = ["total", "", "", "", "", "", "", "", "", "500", "CNY", "", ""]  # reference, registration_code empty
    assert [row for row in rows if row[0] == "total"] == [total]
