"""Connectors to the source departments' systems: files, object storage, PostgreSQL, HTTP."""

from __future__ import annotations


class SourceUnavailable(Exception):
    """A source could not be read (down, slow, too big, misconfigured); the last good snapshot
    keeps serving. The message names the source kind and the error class, never the data."""
