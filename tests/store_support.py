"""Stores for contract tests: a fresh SQLite file, or a fresh PostgreSQL schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway.store import datasets, identity
from gateway.store.db import Store, Tx
from gateway.store.schema import open_store

STORE_KINDS = ("sqlite", "postgres")  # the params of a contract test's `store` fixture


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


@contextmanager
def param_store(request: pytest.FixtureRequest, tmp_path: Path, *seed: Callable[[Tx], object]) -> Iterator[Store]:
    """The store a `store` fixture parametrised over STORE_KINDS stands for: a SQLite file, or a
    fresh PostgreSQL schema (skipped where GATEWAY_TEST_POSTGRES_DSN is unset); seeded in order."""
    dsn = os.environ.get("GATEWAY_TEST_POSTGRES_DSN", "")
    if request.param == "postgres" and not dsn:
        pytest.skip("GATEWAY_TEST_POSTGRES_DSN is not set")
    with open_test_store(request.param, tmp_path, dsn) as store:
        for fn in seed:
            store.run_sync(fn)
        yield store


def bank_and_dataset(dataset: str, owner: str = "psb") -> Callable[[Tx], None]:
    """A seed for ledger tests: the requester organisation `bank` and one dataset's policy."""
    def seed(tx: Tx) -> None:
        identity.ensure_org(tx, "bank", "Bank", "requester")
        datasets.seed_policy(tx, dataset, owner, "v1", {"dataset": dataset}, "test")
    return seed
