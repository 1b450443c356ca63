"""The yearly disclosure as JSON, CSV and a printable HTML page: three renderings of one report.

Each is a pure function of the report, so the same report gives the same bytes. The CSV is
long-form (`section, item, field, value`) so it carries every figure of the JSON; the HTML
page is self-contained (no script, no external style) and prints on A4.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterator
from typing import Any

ID_FIELDS = ("product_id", "dataset", "party", "purpose_class", "pool", "voucher_id", "period", "since", "at")
TITLES = {
    "periods": "Periods", "invoices": "Invoices", "products": "Products and prices",
    "requester_classes": "Calls and revenue by requester class", "free_public_use": "Free public-interest use",
    "revenue_shares": "Revenue shares", "vouchers": "Data vouchers", "allowed_revenue": "Allowed revenue",
    "privacy": "Privacy loss (epsilon) against caps", "dataset_events": "Suspensions and withdrawals",
}
HEAD = ("year", "currency", "status")


def report_json(report: dict[str, Any]) -> bytes:
    return (json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def _label(item: Any, index: int) -> str:
    if isinstance(item, dict):
        parts = [str(item[k]) for k in ID_FIELDS if k in item and not isinstance(item[k], dict | list)]
        if parts:
            return "/".join(parts)
    return str(index)


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _leaves(value[key], f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        if not value:
            yield path, ""
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{_label(item, index)}]")
    else:
        yield path, value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def report_csv(report: dict[str, Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("section", "item", "field", "value"))
    for key in HEAD:
        writer.writerow(("report", "", key, _cell(report[key])))
    for section in (k for k in report if k not in HEAD):
        value = report[section]
        rows = value if isinstance(value, list) else [value]
        for index, item in enumerate(rows):
            item_label = _label(item, index) if isinstance(value, list) else ""
            for field, leaf in _leaves(item, ""):
                writer.writerow((section, item_label, field, _cell(leaf)))
    return out.getvalue().encode()


_STYLE = ("body{font:11pt/1.4 serif;margin:2em}h1{font-size:16pt}h2{font-size:13pt;margin-top:1.5em}"
          "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #888;padding:2px 6px;"
          "text-align:left;vertical-align:top}td.n{text-align:right}@page{size:A4;margin:15mm}"
          "@media print{h2{break-after:avoid}table{break-inside:auto}}")


def _html_value(value: Any) -> str:
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return _html_table(value)
        return html.escape(", ".join(_cell(v) for v in value))
    if isinstance(value, dict):
        return _html_pairs(value)
    return html.escape(_cell(value))


def _td(value: Any) -> str:
    numeric = isinstance(value, int) and not isinstance(value, bool)
    return f'<td class="n">{value}</td>' if numeric else f"<td>{_html_value(value)}</td>"


def _html_table(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_td(row.get(c)) for c in columns) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html_pairs(value: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th>{_td(v)}</tr>" for k, v in sorted(value.items()))
    return f"<table>{rows}</table>"


def report_html(report: dict[str, Any]) -> bytes:
    title = f"Annual operating report {report['year']} ({report['status']})"
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
             f"<p>Amounts in minor units of {html.escape(report['currency'])}; epsilon as exact decimals.</p>"]
    for section in (k for k in report if k not in HEAD):
        parts.append(f"<h2>{html.escape(TITLES.get(section, section))}</h2>{_html_value(report[section])}")
    parts.append("</body></html>\n")
    return "".join(parts).encode()


RENDERERS = {"json": ("application/json", report_json), "csv": ("text/csv", report_csv),
             "html": ("text/html", report_html)}
