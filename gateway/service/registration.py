"""Registration codes: the bureau records them; the catalog, the price board, invoices and ODRL show
them; a county that requires registration publishes and sells only registered products.

The rule of what a code covers and when a product is usable is `core/registration.py`'s; this
module reads what it needs and orders the writes.
"""

from __future__ import annotations

from typing import Any

from gateway.auth.tokens import Principal
from gateway.core.registration import (
    MAX_NOTE,
    Registration,
    parse_code,
    parse_recorded_status,
    product_fingerprint,
    status_of,
    summary,
    usable,
)
from gateway.errors import Conflict, InvalidRequest, NotFound, RegistrationRequired, Unavailable
from gateway.runtime.parts import Runtime
from gateway.service.visibility import visible
from gateway.store import pricing as store_pricing
from gateway.store import products as store_products
from gateway.store import registrations as store_registrations
from gateway.store.db import Tx

Registrations = dict[str, Registration]


def dataset_subject(dataset: str) -> str:
    return f"dataset:{dataset}"


def product_subject(product_id: str) -> str:
    return f"product:{product_id}"


def current(tx: Tx) -> Registrations:
    """subject -> the registration in force (for views that show many subjects)."""
    return store_registrations.current(tx)


def product_state(found: Registration | None, version: store_products.ProductVersion | None) -> str:
    """A product's status against the version it sells now; with nothing published yet, against the
    version registered (a submitted one, registered ahead of its publication)."""
    if version is None:
        return status_of(found, found.fingerprint if found else None)
    return status_of(found, product_fingerprint(version.version, version.definition))


def product_summary(regs: Registrations, product_id: str, version: store_products.ProductVersion) -> dict[str, Any]:
    found = regs.get(product_subject(product_id))
    return summary(found, product_state(found, version))


def dataset_summary(regs: Registrations, dataset: str) -> dict[str, Any]:
    found = regs.get(dataset_subject(dataset))
    return summary(found, status_of(found))


def code_of(regs: Registrations, subject: str) -> str | None:
    """The code recorded on a subject (what an invoice line or a contract names), unless revoked."""
    found = regs.get(subject)
    return found.code if found is not None and found.status != "revoked" else None


class DatasetCodes:
    """The datasets' registrations as read once, for the catalog."""

    def __init__(self, regs: Registrations) -> None:
        self.regs = regs

    def of(self, dataset: str) -> dict[str, Any]:
        """`{code, status}` of a dataset."""
        return dataset_summary(self.regs, dataset)


class _LastRead:
    """The registrations this replica read last."""

    def __init__(self, _runtime: Runtime) -> None:
        self.regs: Registrations | None = None


async def dataset_summaries(runtime: Runtime) -> DatasetCodes:
    """The datasets' registration codes, read afresh; through a store outage, the ones this replica
    read last. The catalog needs nothing else from the store, so it keeps answering (and a replica
    whose rate limits fail open keeps serving it) while the database is away; a code changes only
    by a bureau write, which needs the store."""
    last = runtime.owned(_LastRead)
    try:
        last.regs = await runtime.store.read(current)
    except Unavailable:
        if last.regs is None:
            raise
    return DatasetCodes(last.regs)


# ---------------------------------------------------------------- the rule, where products publish and sell


def _refuse_unless_usable(found: Registration | None, status: str, product_id: str, what: str) -> None:
    if not usable(True, status):
        code = f" (code {found.code})" if found is not None else ""
        raise RegistrationRequired(
            f"the county requires registration: product {product_id!r} is {status}{code}; {what} once the bureau "
            f"records a registration code for the version on sale (PUT /v1/products/{product_id}/registration)",
            extra={"registration_status": status})


def publish_registered(tx: Tx, product_id: str, version: int, actor: str, required: bool) -> None:
    """Publish a version within its fee cap and, when the county requires it, only with a registration
    that covers that version (409 `registration_required` otherwise)."""
    if required:
        found = store_registrations.get(tx, product_subject(product_id))
        v = store_products.get_version(tx, product_id, version)
        _refuse_unless_usable(found, product_state(found, v), product_id, "it can be published")
    store_pricing.publish_product_within_cap(tx, product_id, version, actor)


async def check_on_sale(runtime: Runtime, product_id: str, version: store_products.ProductVersion) -> None:
    """Before an invocation: refused (409) when registration is required and the product's code is
    not valid for the version on sale; one read, only when the setting is on."""
    if not runtime.settings.registration_required:
        return
    found = await runtime.store.read(store_registrations.get, product_subject(product_id))
    _refuse_unless_usable(found, product_state(found, version), product_id, "it can be invoked")


# ---------------------------------------------------------------- the bureau's act, and who may read it


def _note(body: dict[str, Any]) -> str:
    note = body.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise InvalidRequest(f"note must be text of at most {MAX_NOTE} characters")
    return note.strip()


def _product_version(tx: Tx, product_id: str, wanted: Any) -> store_products.ProductVersion:
    """The version a product registration covers: the one named, else the published one, else the
    latest submitted; it must be submitted or published."""
    product = store_products.get_product(tx, product_id)
    if product is None:
        raise NotFound("no such product")
    if wanted is not None:
        if isinstance(wanted, bool) or not isinstance(wanted, int) or not 0 < wanted < 10**6:
            raise InvalidRequest("version must be a product version number")
        v = store_products.get_version(tx, product_id, wanted)
    elif product.published_version is not None:
        v = store_products.get_version(tx, product_id, product.published_version)
    else:
        v = next((x for x in reversed(store_products.versions(tx, product_id)) if x.status == "submitted"), None)
    if v is None or v.status not in ("submitted", "published"):
        raise Conflict("register a submitted or published version of the product "
                       + (f"(version {wanted} is {v.status})" if v is not None else "(none is)"))
    return v


def record_tx(tx: Tx, subject: str, body: dict[str, Any], actor: str) -> dict[str, Any]:
    code, status, note = parse_code(body.get("code")), parse_recorded_status(body.get("status")), _note(body)
    kind, _, ident = subject.partition(":")
    if kind == "product":
        v = _product_version(tx, ident, body.get("version"))
        reg = Registration(subject, code, status, v.version, product_fingerprint(v.version, v.definition), actor,
                           "", note)
    else:
        if body.get("version") is not None:
            raise InvalidRequest("a dataset registration takes no version")
        store_pricing.lock_subject(tx, subject)  # 404 for a dataset the store does not know
        reg = Registration(subject, code, status, None, None, actor, "", note)
    store_registrations.record(tx, reg)
    return _view_tx(tx, subject)


def _view_tx(tx: Tx, subject: str) -> dict[str, Any]:
    found = store_registrations.get(tx, subject)
    kind, _, ident = subject.partition(":")
    out: dict[str, Any] = {("product_id" if kind == "product" else "dataset"): ident}
    if kind == "product":
        product = store_products.get_product(tx, ident)
        published = product.published_version if product is not None else None
        version = store_products.get_version(tx, ident, published) if published is not None else None
        status = product_state(found, version)
        out["published_version"] = published
    else:
        status = status_of(found)
    return {**out, **summary(found, status), "registered_version": found.version if found else None,
            "fingerprint": found.fingerprint if found else None, "note": found.note if found else None,
            "recorded_by": found.recorded_by if found else None, "recorded_at": found.recorded_at if found else None}


async def record_dataset(runtime: Runtime, who: Principal, dataset: str, body: dict[str, Any]) -> dict[str, Any]:
    if dataset not in runtime.registry.policies:
        raise NotFound(f"no dataset {dataset!r}")
    return await runtime.store.write(record_tx, dataset_subject(dataset), body, who.client_id)


async def record_product(runtime: Runtime, who: Principal, product_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return await runtime.store.write(record_tx, product_subject(product_id), body, who.client_id)


async def dataset_registration(runtime: Runtime, who: Principal, dataset: str) -> dict[str, Any]:
    """The bureau's, or the owning source department's, view; anyone else: 404."""
    visible(runtime.registry.policies.get(dataset),
            lambda p: who.has("bureau") or (who.has("source") and p.owner == who.org_id), "dataset")
    return await runtime.store.read(_view_tx, dataset_subject(dataset))


async def product_registration(runtime: Runtime, who: Principal, product_id: str) -> dict[str, Any]:
    """The bureau's, or the product's merchant's, view; anyone else: 404."""
    product = await runtime.store.read(store_products.get_product, product_id)
    visible(product, lambda p: who.has("bureau") or p.merchant_org == who.org_id, "product")
    return await runtime.store.read(_view_tx, product_subject(product_id))
