"""Registration codes (登记结果查询码): a dataset's or a product's nationally unified code and its status.

The bureau records a code per subject (`dataset:<id>` or `product:<id>`); the store keeps the act
(code, `registered` or `revoked`, and for a product the version it covers with a fingerprint of
what was registered). The status a caller sees is derived here, in one place:

    unregistered              no code recorded
    registered                a code recorded, and (for a product) it covers what sells now
    reregistration_required   a product's published version, SQL, parameters or price differ
                              from what was registered (a new version was published since)
    revoked                   the bureau revoked the registration

A code is 8 to 64 characters of upper-case letters, digits and single hyphens, starting and ending
with a letter or digit (e.g. `DEMO-DP-2026-0001`). When the county requires registration
(`GATEWAY_REGISTRATION_REQUIRED`), a product publishes and sells only while `registered`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core.canonical import canonical_json
from gateway.errors import InvalidRequest

CODE_PATTERN = r"^[A-Z0-9]+(-[A-Z0-9]+)*$"  # as the OpenAPI document states it, with length 8 to 64
CODE = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)*")  # fullmatch, with the length checked apart
CODE_RULE = ("8 to 64 upper-case letters, digits and single hyphens, starting and ending with a letter or digit "
             "(e.g. DEMO-DP-2026-0001)")
STATUSES = ("unregistered", "registered", "reregistration_required", "revoked")
RECORDED = ("registered", "revoked")  # what the bureau records; the others are derived
MAX_NOTE = 500
# What a product's registration covers besides its version: its query, parameters and price.
FINGERPRINTED = ("sql", "parameters", "price_minor", "currency", "price_model", "cached_price_minor",
                 "trial_price_minor", "trial_until")


@dataclass(frozen=True)
class Registration:
    """The bureau's act in force on one subject."""

    subject: str
    code: str
    status: str  # registered or revoked, as recorded
    version: int | None  # the product version it covers; None for a dataset
    fingerprint: str | None  # of that version (product_fingerprint); None for a dataset
    recorded_by: str
    recorded_at: str
    note: str = ""


def parse_code(raw: Any) -> str:
    """A registration code as sent, checked against the unified format; 400 otherwise."""
    if not isinstance(raw, str) or not 8 <= len(raw) <= 64 or not CODE.fullmatch(raw):
        raise InvalidRequest(f"code must be {CODE_RULE}")
    return raw


def parse_recorded_status(raw: Any) -> str:
    status = "registered" if raw is None else raw
    if status not in RECORDED:
        raise InvalidRequest(f"status must be one of {', '.join(RECORDED)}")
    return str(status)


def product_fingerprint(version: int, definition: Mapping[str, Any]) -> str:
    """What a product registration covers: the version, its SQL, parameters and price fields."""
    covered = {"version": version, **{k: definition.get(k) for k in FINGERPRINTED}}
    return hashlib.sha256(canonical_json(covered).encode()).hexdigest()


def status_of(found: Registration | None, fingerprint: str | None = None) -> str:
    """The status a caller sees; `fingerprint` is the product's on sale now (None for a dataset)."""
    if found is None:
        return "unregistered"
    if found.status == "revoked":
        return "revoked"
    if found.fingerprint is not None and found.fingerprint != fingerprint:
        return "reregistration_required"
    return "registered"


def usable(required: bool, status: str) -> bool:
    """Whether a product may be published or invoked: always, unless registration is required and
    its code is not valid for what it sells."""
    return not required or status == "registered"


def summary(found: Registration | None, status: str) -> dict[str, Any]:
    """`registration: {code, status}` as the catalog, the product pages and the price board show it."""
    return {"code": found.code if found is not None else None, "status": status}


def codes_of(regs: Mapping[str, Registration]) -> dict[str, str]:
    """subject -> its recorded code, revoked ones left out: what invoices and contracts name."""
    return {subject: r.code for subject, r in regs.items() if r.status != "revoked"}


def shown_code(found: Registration | None, status: str, fallback: str | None) -> str | None:
    """The code the price board shows: the subject's own while valid; the fee cap's (`fallback`)
    when the subject has none of its own; none while its registration needs renewal or is revoked."""
    if found is None:
        return fallback
    return found.code if status == "registered" else None
