"""Authorisation agreements (授权运营协议): what every grant and product stands on.

The bureau records an agreement between an authorising body and an operator: the datasets in
its scope, the products it covers, its term (a first and a last day, in the county's time zone),
the duties and exit terms, and the SHA-256 of the signed document. A grant or a product is made
only under an agreement in force whose scope covers it, and never for longer than its term; the
agreement's end (by the bureau, or its last day passing) ends what stands on it. This module is
the pure part: reading a body strictly, the agreement's state at a moment, and which agreement a
new grant or product stands on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.errors import AgreementEnded, Conflict, InvalidRequest

SHA256 = re.compile(r"^[0-9a-f]{64}$")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
FIELDS = ("authorising_body", "operator", "datasets", "product_ids", "starts_on", "ends_on", "duties",
          "exit_terms", "document_sha256")
MAX_ITEMS = 200
MAX_YEARS = 30


@dataclass(frozen=True)
class Agreement:
    agreement_id: str
    authorising_body: str
    operator: str
    datasets: tuple[str, ...]
    product_ids: tuple[str, ...]
    starts_on: str  # first day (county time), YYYY-MM-DD
    ends_on: str  # last day (county time), YYYY-MM-DD
    starts_at: str  # UTC text: the first day's start
    ends_at: str  # UTC text: the end of the last day
    duties: str
    exit_terms: str
    document_sha256: str
    status: str  # active | ended (by the bureau or by its term)
    created_by: str
    created_at: str
    ended_by: str | None = None
    ended_at: str | None = None
    end_reason: str | None = None

    def state(self, now: str) -> str:
        """`ended` (stored), `expired` (its last day passed, not yet swept), `not_started` or `active`."""
        if self.status == "ended":
            return "ended"
        if self.ends_at <= now:
            return "expired"
        return "not_started" if now < self.starts_at else "active"

    def in_force(self, now: str) -> bool:
        return self.state(now) == "active"

    def covers(self, dataset: str, product_id: str | None) -> bool:
        """A dataset in its scope; a product too when the product is listed."""
        return dataset in self.datasets and (product_id is None or product_id in self.product_ids)

    def as_dict(self, now: str) -> dict[str, Any]:
        return {"id": self.agreement_id, "agreement_id": self.agreement_id,
                "authorising_body": self.authorising_body, "operator": self.operator,
                "datasets": list(self.datasets), "product_ids": list(self.product_ids),
                "starts_on": self.starts_on, "ends_on": self.ends_on, "ends_at": self.ends_at,
                "duties": self.duties, "exit_terms": self.exit_terms, "document_sha256": self.document_sha256,
                "status": self.state(now), "created_by": self.created_by, "created_at": self.created_at,
                "ended_by": self.ended_by, "ended_at": self.ended_at, "end_reason": self.end_reason}


def _refuse(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{field} {message}", extra={"field": field})


def _text(body: Mapping[str, Any], field: str, limit: int) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise _refuse(field, f"must be text of 1 to {limit} characters")
    return value.strip()


def _names(body: Mapping[str, Any], field: str, *, required: bool) -> tuple[str, ...]:
    value = body.get(field, None if required else [])
    if not isinstance(value, list) or (required and not value) or len(value) > MAX_ITEMS:
        raise _refuse(field, f"must be a list of {'1' if required else '0'} to {MAX_ITEMS} ids")
    if not all(isinstance(v, str) and NAME.match(v) for v in value):
        raise _refuse(field, f"must hold ids matching {NAME.pattern}")
    if len(set(value)) != len(value):
        raise _refuse(field, "must not name an id twice")
    return tuple(sorted(value))


def _day(body: Mapping[str, Any], field: str) -> date:
    value = body.get(field)
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise _refuse(field, "must be a date, YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _refuse(field, "must be a date, YYYY-MM-DD") from None


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of a day in the county's time zone, in UTC."""
    return datetime.combine(day, time(), zone).astimezone(UTC)


@dataclass(frozen=True)
class Terms:
    """A checked body: what `store.agreements.create` writes."""

    authorising_body: str
    operator: str
    datasets: tuple[str, ...]
    product_ids: tuple[str, ...]
    starts_on: date
    ends_on: date
    duties: str
    exit_terms: str
    document_sha256: str


def parse_terms(body: Mapping[str, Any], known_datasets: Iterable[str], today: date) -> Terms:
    """A new agreement's terms, each field checked strictly: a 400 naming the first wrong one."""
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise _refuse(unknown[0], "is not a field of an agreement")
    datasets = _names(body, "datasets", required=True)
    missing = sorted(set(datasets) - set(known_datasets))
    if missing:
        raise _refuse("datasets", f"names no dataset {missing[0]!r}")
    starts_on, ends_on = _day(body, "starts_on"), _day(body, "ends_on")
    if ends_on < starts_on:
        raise _refuse("ends_on", "must not fall before starts_on")
    if ends_on < today:
        raise _refuse("ends_on", "must not lie in the past")
    if starts_on.year < today.year - MAX_YEARS or ends_on > today + timedelta(days=round(365.25 * MAX_YEARS)):
        raise _refuse("ends_on", f"must lie within {MAX_YEARS} years of today")
    digest = body.get("document_sha256")
    if not isinstance(digest, str) or not SHA256.match(digest):
        raise _refuse("document_sha256", "must be the document's SHA-256 as 64 lowercase hex digits")
    return Terms(_text(body, "authorising_body", 200), _text(body, "operator", 200), datasets,
                 _names(body, "product_ids", required=False), starts_on, ends_on, _text(body, "duties", 4000),
                 _text(body, "exit_terms", 4000), digest)


def stands_on(candidates: Sequence[Agreement], dataset: str, product_id: str | None, now: str,
              named: str | None = None) -> Agreement:
    """The agreement a new grant (or product) stands on: the one named, or else the agreement in
    force covering it (of several, the one ending last); a 409 saying why when there is none."""
    what = f"product {product_id!r}" if product_id else f"dataset {dataset!r}"
    if named is not None:
        found = [a for a in candidates if a.agreement_id == named]
        if not found:
            raise Conflict(f"no agreement {named!r}", extra={"field": "agreement_id"})
        agreement = found[0]
        if not agreement.in_force(now):
            raise Conflict(f"agreement {named!r} is not in force ({agreement.state(now)})")
        if not agreement.covers(dataset, product_id):
            raise Conflict(f"{what} is outside the scope of agreement {named!r}")
        return agreement
    fitting = [a for a in candidates if a.in_force(now) and a.covers(dataset, product_id)]
    if not fitting:
        raise Conflict(f"no authorisation agreement in force covers {what}: the bureau records one first "
                       "(POST /v1/agreements)")
    # Several: the one in force longest (then the oldest), so that nothing ends sooner than it must;
    # the approver names another to choose it.
    return min(fitting, key=lambda a: (_negated(a.ends_at), a.created_at, a.agreement_id))


def _negated(text: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in text)


def term_problem(agreement: Agreement, valid_until: str | None) -> str | None:
    """Why a grant ending at `valid_until` (UTC text; None: no end of its own) cannot stand on the
    agreement; a grant without an end of its own ends with the agreement."""
    if valid_until is not None and valid_until > agreement.ends_at:
        return (f"the grant would run past the end of agreement {agreement.agreement_id!r} "
                f"(its last day is {agreement.ends_on})")
    return None


def ended_refusal(grant_id: str, agreement: Agreement) -> AgreementEnded:
    """What a call is told when the grant it needs ended with its agreement (410)."""
    when = agreement.ended_at or agreement.ends_at
    why = f" ({agreement.end_reason})" if agreement.end_reason else ""
    return AgreementEnded(f"grant {grant_id} stood on authorisation agreement {agreement.agreement_id}, which ended "
                          f"at {when}{why}: apply again under an agreement in force",
                          extra={"grant_id": grant_id, "agreement_id": agreement.agreement_id})
