"""Stores for contract tests: a fresh SQLite file, or a fresh PostgreSQL schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.store.db import Store
from gateway.store.schema import open_store


@contextmanager
def postgres_schema(dsn: str) -> Iterator[str]:
    """A DSN whose search_path is a new, empty schema; dropped afterwards."""
    import psycopg

    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in dsn else "?"
    try:
        yield f"{dsn}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def open_test_store(kind: str, tmp_path: Path, postgres_dsn: str | None) -> Iterator[Store]:
    if kind == "sqlite":
        store = open_store("", tmp_path)
        try:
            yield store
        finally:
            store.close()
        return
    assert postgres_dsn
    with postgres_schema(postgres_dsn) as dsn:
        store = open_store(dsn, tmp_path, pool_size=8)
        try:
            yield store
        finally:
            store.close()
