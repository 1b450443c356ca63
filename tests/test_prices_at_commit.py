"""A call is priced as of its commit, not its start (R-BI-05; issue 19, also seen).

A release admitted under one policy or product version commits after the bureau published
another: the usage record carries the new price and its price version.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.auth.tokens import Principal
from gateway.cli.demo import PRODUCTS
from gateway.core.checks import check_plan
from gateway.core.sql import parse_sql
from gateway.policyfiles import load_policies, shipped_policies_dir
from gateway.service.admission import Admitted, ProductCall
from gateway.service.pricing import price_call
from gateway.service.products import build_definition, seed_published
from gateway.store import datasets as store_datasets
from gateway.store import identity
from gateway.store import products as store_products
from gateway.store.db import Store, Tx
from gateway.store.ledger import Usage
from tests.store_support import open_test_store

POLICIES = load_policies(shipped_policies_dir())
RESIDENTS = POLICIES["residents"]
BANK = Principal("demo-bank", "lingxi-rural-bank", frozenset({"requester"}), "t")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else None
    with open_test_store(request.param, tmp_path, dsn) as s:
        s.run_sync(store_datasets.seed_policy, "residents", RESIDENTS.owner, RESIDENTS.version,
                   dict(RESIDENTS.document), "test")
        yield s


def admitted(product: ProductCall | None = None) -> Admitted:
    plan = parse_sql("SELECT COUNT(*) FROM residents", epsilon=Decimal("0.1"))
    checked = check_plan(plan, RESIDENTS)
    return Admitted(BANK, checked, RESIDENTS, product, "2026-12", checked.epsilon_nano, (), "*", None)


def priced(store: Store, ctx: Admitted, cached: bool = False) -> Usage:
    """The price fixed in the commit transaction, by the price list in force then (R-BI-05)."""
    return store.run_sync(lambda tx: price_call(tx, ctx, POLICIES, cached=cached))


def test_a_policy_published_mid_release_prices_the_call(store: Store) -> None:
    ctx = admitted()
    usage = priced(store, ctx)
    assert (usage.price_minor, usage.price_version) == (500, f"policy:{RESIDENTS.version}")
    document = json.loads(json.dumps(dict(RESIDENTS.document)))
    document["pricing"]["per_call_minor"] = 700
    document["pricing"]["cached_call_minor"] = 150
    store.run_sync(store_datasets.publish_policy, "residents", "psb", "v2-test", document, "test")
    fresh = priced(store, ctx)
    assert (fresh.price_minor, fresh.price_version) == (700, "policy:v2-test")
    cached = priced(store, ctx, cached=True)
    assert cached.price_minor == 150


def test_a_product_version_published_mid_release_prices_the_call(store: Store) -> None:
    product_id, dataset, body = PRODUCTS[0]
    definition = build_definition(RESIDENTS, body, max_sql_chars=8192)

    def seed(tx: Tx) -> None:
        identity.ensure_org(tx, "datasmith", "Datasmith", "merchant")
        seed_published(tx, product_id, "datasmith", dataset, definition, RESIDENTS.version, "test")
    store.run_sync(seed)
    ctx = admitted(ProductCall(product_id, 1, definition["price_minor"], "CNY", "datasmith"))
    assert priced(store, ctx).price_minor == 800
    product = store.run_sync(store_products.get_product, product_id)
    store.run_sync(store_products.add_version, product, {**definition, "price_minor": 950}, RESIDENTS.version, "m")
    store.run_sync(store_products.submit, product_id, 2, "m")
    store.run_sync(store_products.publish, product_id, 2, "bureau")
    usage = priced(store, ctx)
    assert (usage.price_minor, usage.price_version) == (950, f"product:{product_id}@2")
