"""JSON Schemas of authorisation agreements (part of `components.schemas`; see openapi_schemas.py)."""

from __future__ import annotations

from gateway.core.agreements import MAX_ITEMS, NAME, SHA256
from gateway.http.schema_parts import NULL_S, NULL_TIME, TIME, S, Schema, array, items, obj, ref

_NAME: Schema = {"type": "string", "pattern": NAME.pattern}
_DAY: Schema = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}


def _said(max_length: int, description: str) -> Schema:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": r"\S", "description": description}


AGREEMENT_SCHEMAS: dict[str, Schema] = {
    "AgreementIn": obj(
        ("authorising_body", "operator", "datasets", "starts_on", "ends_on", "duties", "exit_terms",
         "document_sha256"), False,
        authorising_body=_said(200, "Who authorises (e.g. the county government)."),
        operator=_said(200, "The authorised operator (运营单位)."),
        datasets={**array(_NAME, "The datasets in scope."), "minItems": 1, "maxItems": MAX_ITEMS, "uniqueItems": True},
        product_ids={**array(_NAME, "The products it covers."), "maxItems": MAX_ITEMS, "uniqueItems": True},
        starts_on={**_DAY, "description": "First day in force (county time)."},
        ends_on={**_DAY, "description": "Last day in force (county time); not before starts_on, not past."},
        duties=_said(4000, "The operator's duties."), exit_terms=_said(4000, "What happens at exit."),
        document_sha256={"type": "string", "pattern": SHA256.pattern,
                         "description": "SHA-256 of the signed document, 64 lowercase hex digits."}),
    "Agreement": obj(
        ("id", "agreement_id", "authorising_body", "operator", "datasets", "product_ids", "starts_on", "ends_on",
         "status"),
        id=S, agreement_id={**S, "description": "= id"}, authorising_body=S, operator=S, datasets=array(S),
        product_ids=array(S), starts_on=_DAY, ends_on=_DAY, ends_at=TIME, duties=S, exit_terms=S,
        document_sha256=S, status=ref("AgreementStatus"), created_by=S, created_at=TIME,
        ended_by=NULL_S, ended_at=NULL_TIME, end_reason=NULL_S,
        grants_ended={"type": "integer"}, applications_closed={"type": "integer"}, products_stopped=array(S)),
    "AgreementList": items("Agreement"),
    "PublishIn": obj((), False, agreement_id={**NULL_S, "description": "The agreement it stands on; default: the "
                                              "one in force listing the product."}),
}

_T = "2026-11-07T16:45:33.385805Z"
_AGREEMENT = {
    "id": "agr-demo-county", "agreement_id": "agr-demo-county", "authorising_body": "Lingxi County People's Government",
    "operator": "datasmith", "datasets": ["enterprises", "residents", "social_insurance", "vehicles"],
    "product_ids": ["income-by-township", "vehicle-values-by-type"], "starts_on": "2025-01-01",
    "ends_on": "2045-12-31", "ends_at": "2045-12-31T16:00:00.000000Z",
    "duties": "Serve the county's public data only through the gateway's differentially private releases.",
    "exit_terms": "Every grant and product standing on this agreement ends.",
    "document_sha256": "5d4bb4c2a5d3d0c8c1bfe4e8a0e6a1f7c3b1f4f5f4c2e2d9b0a9f8e7d6c5b4a3", "status": "active",
    "created_by": "demo-bureau", "created_at": _T, "ended_by": None, "ended_at": None, "end_reason": None}
AGREEMENT_EXAMPLES: dict[str, object] = {
    "AgreementIn": {k: _AGREEMENT[k] for k in ("authorising_body", "operator", "datasets", "product_ids", "starts_on",
                                              "ends_on", "duties", "exit_terms", "document_sha256")},
    "Agreement": _AGREEMENT,
    "AgreementList": {"items": [_AGREEMENT], "next": None},
    "PublishIn": {"agreement_id": "agr-demo-county"},
}
