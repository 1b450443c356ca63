"""A grant as an ODRL 2.2 Agreement in JSON-LD: the usage contract a trusted data space asks for.

The mapping, from the gateway's terms to ODRL's:
- assigners: the source department that owns the dataset and the data bureau that approved;
  the assignee: the requester organisation;
- target: the dataset (or the product) with its registration code where it has one;
- one permission to `use` it, constrained by purpose, term (`dateTime`), the privacy budget per
  period (epsilon and delta, in the gateway's own vocabulary `gw:`) and, for a product, the calls;
- a duty to `compensate` at the price in force (per call, in minor units of the currency);
- a prohibition to `distribute` (the answers are the requester's, not to be passed on).

The states of the contract follow the grant: an `active` grant is a concluded agreement, `revoked`
and `ended` (a withdrawal, or its authorisation agreement's end) terminate it, a suspended dataset
suspends it (`gw:state`). The authorisation agreement it stands on is `gw:agreement` (its id) and
`dct:source` (its address).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ODRL_CONTEXT = "http://www.w3.org/ns/odrl.jsonld"
GATEWAY_VOCABULARY = "https://county-gateway.example/ns/odrl#"


@dataclass(frozen=True)
class GrantTerms:
    """What an agreement states, gathered by the service from the grant and its application."""

    base_url: str
    grant_id: str
    assignee_org: str
    source_org: str
    bureau_org: str
    dataset: str
    product_id: str | None
    registration_code: str | None
    purpose: str
    purpose_class: str | None
    epsilon_per_period: str
    delta_per_period: str | None
    period: str  # the budget period, e.g. "P1M"
    valid_from: str
    valid_until: str | None
    price_minor: int | None
    currency: str
    state: str  # active | suspended | revoked | ended | expired
    agreement_id: str | None = None  # the authorisation agreement the grant stands on


def _party(base: str, org_id: str, role: str) -> dict[str, Any]:
    return {"@type": "Party", "uid": f"{base}/orgs/{org_id}", "gw:orgId": org_id, "gw:role": role}


def _constraint(left: str, operator: str, right: Any, unit: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"leftOperand": left, "operator": operator, "rightOperand": right}
    if unit:
        out["unit"] = unit
    return out


def agreement(t: GrantTerms) -> dict[str, Any]:
    base = t.base_url.rstrip("/")
    target_uid = f"{base}/v1/products/{t.product_id}" if t.product_id else f"{base}/v1/datasets/{t.dataset}"
    target: dict[str, Any] = {"@type": "Asset", "uid": target_uid, "gw:dataset": t.dataset}
    if t.registration_code:
        target["gw:registrationCode"] = t.registration_code
    assigners = [_party(base, t.source_org, "source_department"), _party(base, t.bureau_org, "data_bureau")]
    assignee = _party(base, t.assignee_org, "requester")
    constraints = [
        _constraint("purpose", "eq", t.purpose_class or t.purpose),
        _constraint("dateTime", "gteq", {"@value": t.valid_from, "@type": "xsd:dateTime"}),
    ]
    if t.valid_until:
        constraints.append(_constraint("dateTime", "lt", {"@value": t.valid_until, "@type": "xsd:dateTime"}))
    constraints.append(_constraint("gw:epsilonPerPeriod", "lteq",
                                   {"@value": t.epsilon_per_period, "@type": "xsd:decimal"}, "gw:epsilon"))
    if t.delta_per_period is not None:
        constraints.append(_constraint("gw:deltaPerPeriod", "lteq",
                                       {"@value": t.delta_per_period, "@type": "xsd:decimal"}, "gw:delta"))
    constraints.append(_constraint("elapsedTime", "eq", {"@value": t.period, "@type": "xsd:duration"}))
    permission: dict[str, Any] = {
        "target": target_uid, "assigner": [p["uid"] for p in assigners], "assignee": assignee["uid"],
        "action": "use", "constraint": constraints,
    }
    if t.price_minor is not None:
        permission["duty"] = [{"action": "compensate", "constraint": [
            _constraint("payAmount", "eq", {"@value": f"{t.price_minor / 100:.2f}", "@type": "xsd:decimal"},
                        f"gw:currency/{t.currency}"),
            _constraint("event", "eq", "gw:perCall")]}]
    stands_on = {"gw:agreement": t.agreement_id, "dct:source": f"{base}/v1/agreements/{t.agreement_id}"} \
        if t.agreement_id else {}
    return {
        "@context": [ODRL_CONTEXT, {"gw": GATEWAY_VOCABULARY, "xsd": "http://www.w3.org/2001/XMLSchema#",
                                    "dct": "http://purl.org/dc/terms/"}],
        "@type": "Agreement",
        "uid": f"{base}/v1/grants/{t.grant_id}",
        "gw:state": t.state,
        **stands_on,
        "assigner": assigners,
        "assignee": assignee,
        "target": target,
        "permission": [permission],
        "prohibition": [{"target": target_uid, "assigner": [p["uid"] for p in assigners],
                         "assignee": assignee["uid"], "action": "distribute"}],
    }
