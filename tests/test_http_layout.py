"""The HTTP layer's own floor plan (beside test_layering's rules for every layer): handlers parse no
SQL themselves, and no handler module imports another (shared helpers live in helper modules)."""

from __future__ import annotations

import importlib

from tests.test_layering import all_uses, breaches, reaches

HTTP = "gateway.http"


def test_http_parses_no_query_itself() -> None:
    assert breaches(all_uses(), (HTTP,), ("gateway.core.sql", "gateway.core.jsonplan")) == []


def test_no_handler_module_imports_another() -> None:
    """Handler modules are those with a ROUTES table (the OpenAPI document's included); only the
    route table imports them."""
    uses = [u for u in all_uses() if u.module.startswith(HTTP + ".")]
    modules = {u.module for u in uses}
    handlers = {m for m in modules if m != f"{HTTP}.routes" and hasattr(importlib.import_module(m), "ROUTES")}
    assert {f"{HTTP}.admin", f"{HTTP}.openapi", f"{HTTP}.queries", f"{HTTP}.basics"} <= handlers
    crossing = sorted(str(u) for u in uses if u.module in handlers
                      and any(reaches(u, h) for h in handlers if h != u.module))
    assert crossing == []
