"""Data products and their versions: drafted, submitted, published (immutable), superseded."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from gateway.clock import utc_now_text
from gateway.core.canonical import canonical_json
from gateway.core.pages import Page, PageRequest, collect
from gateway.errors import Conflict
from gateway.store import audit, product_status
from gateway.store.db import Tx
from gateway.store.pages import read_page


@dataclass(frozen=True)
class Product:
    product_id: str
    merchant_org: str
    dataset: str
    published_version: int | None
    created_at: str


@dataclass(frozen=True)
class ProductVersion:
    product_id: str
    version: int
    status: str
    definition: dict[str, Any]
    definition_hash: str
    policy_version: str
    created_by: str
    created_at: str
    submitted_at: str | None
    decided_by: str | None
    decided_at: str | None
    reason: str | None


_VERSION_COLUMNS = ("product_id, version, status, definition, definition_hash, policy_version, created_by, "
                    "created_at, submitted_at, decided_by, decided_at, reason")


def _version(row: tuple[Any, ...]) -> ProductVersion:
    return ProductVersion(row[0], int(row[1]), row[2], json.loads(row[3]), *row[4:])


def _lock(tx: Tx) -> str:
    return " FOR UPDATE" if tx.dialect == "postgres" else ""


def definition_hash(definition: dict[str, Any]) -> str:
    text = canonical_json(definition)
    return hashlib.sha256(text.encode()).hexdigest()


def get_product(tx: Tx, product_id: str, *, lock: bool = False) -> Product | None:
    row = tx.one("SELECT product_id, merchant_org, dataset, published_version, created_at FROM products "
                 "WHERE product_id = ?" + (_lock(tx) if lock else ""), (product_id,))
    return Product(row[0], row[1], row[2], int(row[3]) if row[3] is not None else None, row[4]) if row else None


def get_version(tx: Tx, product_id: str, version: int) -> ProductVersion | None:
    row = tx.one(f"SELECT {_VERSION_COLUMNS} FROM product_versions WHERE product_id = ? AND version = ?",
                 (product_id, version))
    return _version(row) if row else None


def versions(tx: Tx, product_id: str) -> list[ProductVersion]:
    rows = tx.all(f"SELECT {_VERSION_COLUMNS} FROM product_versions WHERE product_id = ? ORDER BY version",
                  (product_id,))
    return [_version(r) for r in rows]


def versions_page(tx: Tx, product_id: str, page: PageRequest) -> Page[ProductVersion]:
    """A product's versions, oldest first."""
    return read_page(tx, _VERSION_COLUMNS, "product_versions", "product_id = ?", (product_id,), ("version",), page,
                     _version)


def published(tx: Tx, excluded_datasets: tuple[str, ...] = ()) -> list[tuple[Product, ProductVersion]]:
    return collect(lambda page: published_page(tx, excluded_datasets, page))


def published_page(tx: Tx, excluded_datasets: tuple[str, ...],
                   page: PageRequest) -> Page[tuple[Product, ProductVersion]]:
    """Products with a published version (and that version), by id, but those on `excluded_datasets`."""
    columns = ("p.product_id, p.merchant_org, p.dataset, p.published_version, p.created_at, "
               + ", ".join("v." + c.strip() for c in _VERSION_COLUMNS.split(",")))
    source = "products p JOIN product_versions v ON v.product_id = p.product_id AND v.version = p.published_version"
    where = f"p.dataset NOT IN ({', '.join('?' for _ in excluded_datasets)})" if excluded_datasets else ""
    return read_page(tx, columns, source, where, excluded_datasets, ("p.product_id",), page,
                     lambda r: (Product(r[0], r[1], r[2], int(r[3]), r[4]), _version(r[5:])))


def _insert_version(tx: Tx, product_id: str, version: int, definition: dict[str, Any], policy_version: str,
                    actor: str) -> ProductVersion:
    now, digest = utc_now_text(), definition_hash(definition)
    tx.execute(f"INSERT INTO product_versions ({_VERSION_COLUMNS}) VALUES (?, ?, 'draft', ?, ?, ?, ?, ?, NULL, "
               "NULL, NULL, NULL)", (product_id, version, json.dumps(definition, sort_keys=True), digest,
                                     policy_version, actor, now))
    audit.append(tx, "product.drafted", actor, f"{product_id}@{version}", {"definition_hash": digest})
    return ProductVersion(product_id, version, "draft", definition, digest, policy_version, actor, now,
                          None, None, None, None)


def create_product(tx: Tx, product_id: str, merchant_org: str, dataset: str, definition: dict[str, Any],
                   policy_version: str, actor: str) -> ProductVersion:
    if get_product(tx, product_id) is not None:
        raise Conflict(f"the product id {product_id!r} is taken: choose another "
                       "(of your own product, draft a new version)")
    now = utc_now_text()
    tx.execute("INSERT INTO products (product_id, merchant_org, dataset, published_version, created_at, "
               "updated_at) VALUES (?, ?, ?, NULL, ?, ?)", (product_id, merchant_org, dataset, now, now))
    return _insert_version(tx, product_id, 1, definition, policy_version, actor)


def add_version(tx: Tx, product: Product, definition: dict[str, Any], policy_version: str,
                actor: str) -> ProductVersion:
    """A new draft; an earlier draft or submission still open is discarded."""
    get_product(tx, product.product_id, lock=True)
    row = tx.one("SELECT MAX(version) FROM product_versions WHERE product_id = ?", (product.product_id,))
    version = int(row[0] if row and row[0] is not None else 0) + 1
    for old in versions(tx, product.product_id):
        if old.status in ("draft", "submitted"):
            _move(tx, old, "discarded", actor, "a newer draft replaced it")
    return _insert_version(tx, product.product_id, version, definition, policy_version, actor)


def _move(tx: Tx, v: ProductVersion, status: str, actor: str, reason: str | None) -> None:
    now = utc_now_text()
    tx.execute("UPDATE product_versions SET status = ?, decided_by = ?, decided_at = ?, reason = ? "
               "WHERE product_id = ? AND version = ?", (status, actor, now, reason, v.product_id, v.version))
    audit.append(tx, f"product.{status}", actor, f"{v.product_id}@{v.version}",
                 {"definition_hash": v.definition_hash, "reason": reason})


def _in_state(tx: Tx, product_id: str, version: int, states: tuple[str, ...]) -> ProductVersion:
    get_product(tx, product_id, lock=True)
    v = get_version(tx, product_id, version)
    if v is None:
        raise Conflict("no such product version")
    if v.status not in states:
        raise Conflict(f"version {version} is {v.status}, not {' or '.join(states)}")
    return v


def submit(tx: Tx, product_id: str, version: int, actor: str) -> None:
    v = _in_state(tx, product_id, version, ("draft",))
    now = utc_now_text()
    tx.execute("UPDATE product_versions SET status = 'submitted', submitted_at = ? WHERE product_id = ? "
               "AND version = ?", (now, product_id, version))
    audit.append(tx, "product.submitted", actor, f"{product_id}@{version}", {"definition_hash": v.definition_hash})


def publish(tx: Tx, product_id: str, version: int, actor: str) -> None:
    """The version becomes the product's answer; the one before it is superseded."""
    v = _in_state(tx, product_id, version, ("submitted",))
    product = get_product(tx, product_id)
    assert product is not None
    if product.published_version is not None:
        old = get_version(tx, product_id, product.published_version)
        assert old is not None
        _move(tx, old, "superseded", actor, f"version {version} was published")
    _move(tx, v, "published", actor, None)
    tx.execute("UPDATE products SET published_version = ?, updated_at = ? WHERE product_id = ?",
               (version, utc_now_text(), product_id))
    product_status.reopen_on_publish(tx, product_id)


def reject(tx: Tx, product_id: str, version: int, actor: str, reason: str) -> None:
    v = _in_state(tx, product_id, version, ("draft", "submitted"))
    _move(tx, v, "rejected", actor, reason)
