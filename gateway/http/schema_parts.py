"""Building blocks of the API's JSON Schemas: scalars, nullable forms, and the enums, each named once."""

from __future__ import annotations

from typing import Any

from gateway.core.products import PARAM_NAME
from gateway.service.billing import PERIOD as PERIOD_RE
from gateway.service.products import CURRENCY as CURRENCY_RE
from gateway.service.products import PRODUCT_ID
from gateway.service.requesters import ORG_ID

Schema = dict[str, Any]


def obj(required: tuple[str, ...] = (), additional: bool = True, doc: str = "", **props: Schema) -> Schema:
    """An object; request bodies pass `additional=False` so an unknown field is refused (R-AU-08)."""
    return obj_from(props, required, additional, doc)


def obj_from(props: dict[str, Schema], required: tuple[str, ...] = (), additional: bool = True,
             doc: str = "") -> Schema:
    out: Schema = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    if not additional:
        out["additionalProperties"] = False
    if doc:
        out["description"] = doc
    return out


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def array(items: Schema, description: str = "") -> Schema:
    out: Schema = {"type": "array", "items": items}
    if description:
        out["description"] = description
    return out


def items(name: str) -> Schema:
    """A page of a list: `{"items": [...], "next": URL-or-null}`."""
    return obj(("items", "next"), items=array(ref(name)), next=NEXT)


def nullable_ref(name: str) -> Schema:
    return {"anyOf": [ref(name), {"type": "null"}]}


def nullable(schema: Schema) -> Schema:
    """The same scalar schema, null allowed (OpenAPI 3.1 writes it as a type list)."""
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return {**schema, "type": [*kinds, "null"]}


def text(description: str = "", max_length: int | None = None) -> Schema:
    out: Schema = {"type": "string"}
    if description:
        out["description"] = description
    if max_length is not None:
        out["maxLength"] = max_length
    return out


S: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
N: Schema = {"type": "number"}
B: Schema = {"type": "boolean"}
NULL_S: Schema = nullable(S)
TIME: Schema = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC."}
NULL_TIME: Schema = nullable(TIME)
# Patterns are the service's own: one rule, checked by the schema first and the service after.
PERIOD: Schema = {"type": "string", "pattern": PERIOD_RE.pattern, "description": "A month, YYYY-MM."}
SLUG: Schema = {"type": "string", "pattern": ORG_ID.pattern}
PRODUCT_SLUG: Schema = {"type": "string", "pattern": PRODUCT_ID.pattern}
PARAMETER_NAME: Schema = {"type": "string", "pattern": PARAM_NAME.pattern}
SCALAR: Schema = {"type": ["string", "number", "boolean"]}
NULL_SCALAR: Schema = {"type": ["string", "number", "boolean", "null"]}
CELL: Schema = {"type": ["string", "number", "boolean", "null"], "description": "One value of a row."}
MONEY: Schema = {"type": "integer", "description": "An amount in the currency's minor unit (fen for CNY)."}
CURRENCY: Schema = {"type": "string", "pattern": CURRENCY_RE.pattern, "description": "ISO 4217."}
EPSILON_IN: Schema = {"type": ["number", "string"],
                      "description": "A positive decimal; a string such as \"0.5\" keeps it exact."}
EPSILON: Schema = {"type": "number", "minimum": 0, "description": "Privacy loss (epsilon)."}
HASH: Schema = {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "SHA-256, hex."}
ID: Schema = {"type": "string", "minLength": 1, "maxLength": 200}
NEXT: Schema = {"type": ["string", "null"], "format": "uri-reference",
                "description": "The next page (this request with a `cursor`), or null on the last page."}

# Enums: each a component of its own, referenced wherever it appears (a generator names it once).
ENUMS: dict[str, Schema] = {
    "Role": {"type": "string", "enum": ["requester", "bureau", "source", "merchant", "ops"]},
    "DatasetStatus": {"type": "string", "enum": ["active", "suspended", "withdrawn"],
                      "description": "active answers; suspended answers 409; withdrawn answers 410, for good."},
    "AccountStatus": {"type": "string", "enum": ["active", "suspended"]},
    "OrgKind": {"type": "string", "enum": ["requester", "merchant"]},
    "ApplicationStatus": {"type": "string", "enum": ["pending", "approved", "rejected", "closed"]},
    "GrantStatus": {"type": "string", "enum": ["active", "expired", "revoked", "ended"]},
    "AgreementStatus": {"type": "string", "enum": ["active", "not_started", "expired", "ended"],
                        "description": "expired: its last day passed (it is ended at the next sweep)."},
    "ProductVersionStatus": {"type": "string",
                             "enum": ["draft", "submitted", "published", "superseded", "rejected", "discarded"]},
    "PeriodStatus": {"type": "string", "enum": ["open", "closed"],
                     "description": "closed: the month has ended and its figures never change."},
    "InvoiceLineKind": {"type": "string", "enum": ["usage", "credit", "carry"]},
    "PurposeClass": {"type": "string", "enum": ["public_governance", "public_interest", "industry"]},
    "SaleStatus": {"type": "string", "enum": ["published", "suspended", "retired"]},
    "RegistrationStatus": {"type": "string", "enum": ["unregistered", "registered", "reregistration_required",
                                                      "revoked"],
                           "description": "registered: the code covers what sells now; reregistration_required: "
                                          "a product's version, SQL, parameters or price changed since."},
    "RegistrationAct": {"type": "string", "enum": ["registered", "revoked"]},
    "PriceModel": {"type": "string", "enum": ["per_call", "per_month", "per_cell"]},
    "ReportStatus": {"type": "string", "enum": ["final", "provisional"]},
    "ParameterType": {"type": "string", "enum": ["integer", "number", "string", "boolean"]},
    "ColumnType": {"type": "string", "enum": ["string", "integer", "float", "boolean"]},
    "Classification": {"type": "string", "enum": ["general", "important", "core"],
                       "description": "The data's level under the national classification (一般/重要/核心)."},
    "PrivacyUnitKind": {"type": "string", "enum": ["row", "identifier"]},
    "Aggregate": {"type": "string", "enum": ["count", "sum", "mean", "median", "quantile"]},
}
