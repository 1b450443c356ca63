"""Policies (filled in below)."""
from __future__ import annotations

from gateway.console.web import Page

PAGES: tuple[Page, ...] = ()
