"""Applications for grants, their approval by the bureau and the source department, and grants.

Who sees what (R-AU-06, R-AU-07): a requester its own organisation's applications and grants;
a source department those on the datasets it owns; the bureau all of them. Anything else
answers 404 exactly like a missing id. The policy's `auto_approve_epsilon` stands in for the
bureau's approval of a small request; where the policy asks for the source department's
co-signature, that is still awaited. Both rules are those of the policy in force when each
step is taken (issue 19 point 6); a co-signature covers the terms it was given over (point 7).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

from gateway.auth.tokens import Principal
from gateway.clock import utc_now, utc_now_text, utc_text
from gateway.core.budget import from_nano, to_nano
from gateway.core.cosign import AUTO_APPROVER, Rules, auto_approval_holds
from gateway.core.dates import parse_expiry as parse_date
from gateway.core.derived import derived_from
from gateway.core.pages import Page, PageRequest
from gateway.core.pricing import INDUSTRY, PUBLIC_CLASSES, PURPOSE_CLASSES
from gateway.errors import DatasetWithdrawn, InvalidRequest, NotFound
from gateway.runtime.parts import Runtime
from gateway.service import agreements
from gateway.service.admission import AdmissionState
from gateway.service.visibility import visible
from gateway.store import applications as store_apps
from gateway.store import products as store_products
from gateway.store.db import Tx


def owned_datasets(runtime: Runtime, org_id: str) -> tuple[str, ...]:
    return tuple(sorted(d for d, p in runtime.registry.policies.items() if p.owner == org_id))


def scope(runtime: Runtime, who: Principal) -> tuple[str | None, tuple[str, ...] | None]:
    """(org filter, dataset filter) of what the caller may see; (None, None) is everything."""
    if who.has("bureau"):
        return None, None
    if who.has("source"):
        return None, owned_datasets(runtime, who.org_id)
    return who.org_id, None


def in_scope(runtime: Runtime, who: Principal, org_id: str, dataset: str) -> bool:
    """Whether an object of `org_id` about `dataset` is within what the caller may see."""
    org, datasets = scope(runtime, who)
    return (org is None or org_id == org) and (datasets is None or dataset in datasets)


def parse_epsilon(value: Any, what: str = "epsilon_per_period") -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRequest(f"{what} must be a positive number")
    try:
        eps = Decimal(str(value))
    except ArithmeticError:
        raise InvalidRequest(f"{what} must be a positive number") from None
    if not eps.is_finite() or eps <= 0 or eps > 1_000_000:
        raise InvalidRequest(f"{what} must be a positive number")
    return eps


def parse_expiry(runtime: Runtime, value: Any) -> str | None:
    """An expiry as the store's UTC text (None stays None); a date alone is the end of that day in
    the county's time zone; outside today .. 50 years ahead, a 400 naming `valid_until`."""
    if value is None:
        return None
    return utc_text(parse_date(value, runtime.settings.zone, utc_now()))


def parse_purpose_class(value: Any, default: str = INDUSTRY) -> str:
    if value is None:
        return default
    if value not in PURPOSE_CLASSES:
        raise InvalidRequest(f"purpose_class must be one of {', '.join(PURPOSE_CLASSES)}")
    return str(value)


async def apply(runtime: Runtime, who: Principal, dataset: Any, product_id: Any, purpose: Any,
                epsilon: Any, valid_until: Any, *, purpose_class: Any = None) -> dict[str, Any]:
    stated_class = parse_purpose_class(purpose_class)
    if (dataset is None) == (product_id is None):
        raise InvalidRequest("name exactly one of dataset and product_id")
    if not isinstance(purpose, str) or not 10 <= len(purpose.strip()) <= 2000:
        raise InvalidRequest("purpose must say, in 10 to 2000 characters, what the data is for")
    if product_id is not None:
        if not isinstance(product_id, str):
            raise InvalidRequest("product_id must be a string")
        product = await runtime.store.read(store_products.get_product, product_id)
        if product is None or product.published_version is None:
            raise NotFound("no such product")
        dataset = product.dataset
    if not isinstance(dataset, str):
        raise InvalidRequest("dataset must be a string")
    policy = runtime.registry.get(dataset)
    if runtime.registry.withdrawn(dataset):
        raise DatasetWithdrawn(f"dataset {dataset!r} has been withdrawn")
    eps = parse_epsilon(epsilon)
    if eps > policy.global_cap:
        raise InvalidRequest(f"epsilon_per_period cannot exceed the dataset's cap of {policy.global_cap}")
    app = store_apps.Application(
        application_id="app-" + uuid.uuid4().hex[:16], org_id=who.org_id, client_id=who.client_id,
        dataset=dataset, product_id=product_id, purpose=purpose.strip(), epsilon_requested_nano=to_nano(eps),
        valid_until_requested=parse_expiry(runtime, valid_until), status="pending",
        needs_cosign=policy.requires_source_cosign, purpose_class=stated_class)
    rules = rules_now(runtime, dataset, app.epsilon_requested_nano, stated_class)
    agreement = None
    if rules.auto_approval_holds:  # only under an agreement in force; else the bureau decides
        agreement = await agreements.maybe_standing(runtime, dataset, product_id, app.valid_until_requested)
        if agreement is None:
            rules = replace(rules, auto_approval_holds=False)
    created = await runtime.store.write(_submit, app, rules, agreement.agreement_id if agreement else None)
    return created.as_dict()


def rules_now(runtime: Runtime, dataset: str, epsilon_nano: int, purpose_class: str = INDUSTRY) -> Rules:
    """The policy in force, as it bears on a grant made now. A public purpose class is free of
    charge: only the bureau can accept that claim, never the policy's automatic approval."""
    policy = runtime.registry.get(dataset)
    return Rules(policy.requires_source_cosign,
                 auto_approval_holds(policy.auto_approve_epsilon, from_nano(epsilon_nano))
                 and purpose_class not in PUBLIC_CLASSES)


def _submit(tx: Tx, app: store_apps.Application, rules: Rules, agreement_id: str | None) -> store_apps.Application:
    created = store_apps.create_application(tx, app)
    if not rules.auto_approval_holds:
        return created
    return store_apps.approve(tx, app.application_id, AUTO_APPROVER, app.epsilon_requested_nano,
                              app.valid_until_requested, auto=True, rules=rules, agreement_id=agreement_id)


async def visible_application(runtime: Runtime, who: Principal, application_id: str) -> store_apps.Application:
    app = await runtime.store.read(store_apps.get_application, application_id)
    return visible(app, lambda a: in_scope(runtime, who, a.org_id, a.dataset), "application")


async def list_applications(runtime: Runtime, who: Principal) -> list[dict[str, Any]]:
    org, datasets = scope(runtime, who)
    found = await runtime.store.read(store_apps.list_applications, org, datasets)
    return [a.as_dict() for a in found]


async def applications_page(runtime: Runtime, who: Principal, page: PageRequest) -> Page[dict[str, Any]]:
    """One page of `list_applications`, oldest first."""
    org, datasets = scope(runtime, who)
    found = await runtime.store.read(store_apps.applications_page, org, datasets, page)
    return found.map(store_apps.Application.as_dict)


async def approve(runtime: Runtime, who: Principal, application_id: str, epsilon: Any,
                  valid_until: Any, *, purpose_class: Any = None, agreement_id: Any = None) -> dict[str, Any]:
    """The bureau's approval, possibly with a smaller budget, an expiry or a corrected class, under
    the authorisation agreement named (or else the one in force covering it; 409 when none does)."""
    app = await visible_application(runtime, who, application_id)
    approved_class = parse_purpose_class(purpose_class, app.purpose_class)
    eps_nano = app.epsilon_requested_nano if epsilon is None else to_nano(parse_epsilon(epsilon))
    if eps_nano > app.epsilon_requested_nano:
        raise InvalidRequest("the approved budget cannot exceed the budget applied for")
    expiry = parse_expiry(runtime, valid_until) if valid_until is not None else app.valid_until_requested
    rules = rules_now(runtime, app.dataset, eps_nano, approved_class)
    agreement = await agreements.standing(runtime, agreement_id, app.dataset, app.product_id, expiry)
    done = await runtime.store.write(store_apps.approve, app.application_id, who.client_id, eps_nano, expiry,
                                     False, rules, approved_class, agreement.agreement_id)
    return done.as_dict()


async def cosign(runtime: Runtime, who: Principal, application_id: str) -> dict[str, Any]:
    """The owning source department's co-signature (the scope check makes it its own)."""
    app = await visible_application(runtime, who, application_id)
    rules = rules_now(runtime, app.dataset, app.epsilon_approved_nano or app.epsilon_requested_nano,
                      app.purpose_class_approved or app.purpose_class)
    done = await runtime.store.write(store_apps.cosign, app.application_id, who.client_id, rules)
    return done.as_dict()


async def reject(runtime: Runtime, who: Principal, application_id: str, reason: Any) -> dict[str, Any]:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 2000:
        raise InvalidRequest("reason must be text of 1 to 2000 characters")
    app = await visible_application(runtime, who, application_id)
    done = await runtime.store.write(store_apps.reject, app.application_id, who.client_id, reason.strip())
    return done.as_dict()


# ---------------------------------------------------------------- grants


async def list_grants(runtime: Runtime, who: Principal) -> list[dict[str, Any]]:
    org, datasets = scope(runtime, who)
    found = await runtime.store.read(store_apps.list_grants, org, datasets)
    now = utc_now_text()
    return [g.as_dict(now) for g in found]


async def grants_page(runtime: Runtime, who: Principal, page: PageRequest) -> Page[dict[str, Any]]:
    """One page of `list_grants`, oldest first."""
    org, datasets = scope(runtime, who)
    found = await runtime.store.read(store_apps.grants_page, org, datasets, page)
    now = utc_now_text()
    return found.map(lambda g: g.as_dict(now))


def _revoke(tx: Tx, grant_id: str, actor: str, reason: str, org_id: str, dataset: str,
            views: tuple[str, ...]) -> None:
    """The grant, and with it the organisation's grants on views of its dataset (R-DP-18)."""
    if store_apps.revoke_grant(tx, grant_id, actor, reason):
        store_apps.end_derived_grants(tx, org_id, dataset, views, actor)


async def visible_grant(runtime: Runtime, who: Principal, grant_id: str) -> store_apps.GrantView:
    found = await runtime.store.read(store_apps.get_grant, grant_id)
    return visible(found, lambda g: in_scope(runtime, who, g.grant.org_id, g.grant.dataset), "grant")


async def get_grant(runtime: Runtime, who: Principal, grant_id: str) -> dict[str, Any]:
    return (await visible_grant(runtime, who, grant_id)).as_dict(utc_now_text())


async def revoke_grant(runtime: Runtime, who: Principal, grant_id: str, reason: Any) -> dict[str, Any]:
    """By the bureau, or the source department owning the dataset; effective at the next call."""
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 2000:
        raise InvalidRequest("reason must be text of 1 to 2000 characters")
    grant = (await visible_grant(runtime, who, grant_id)).grant
    views = derived_from(runtime.registry.policies, grant.dataset)
    await runtime.store.write(_revoke, grant_id, who.client_id, reason.strip(), grant.org_id, grant.dataset, views)
    runtime.owned(AdmissionState).grants.clear()  # at once here; other replicas within one poll interval
    return await get_grant(runtime, who, grant_id)
