"""JSON Schemas of the API's bodies: the OpenAPI document's `components.schemas`, and the validator of
every JSON request body (http/validate.py) — one definition, two uses.

Request schemas (`…In`) refuse unknown fields; the service still checks meaning (ranges, existence).
Answer schemas list what is always there as required and mark what may be null.
"""

from __future__ import annotations

from gateway.http.openapi_agreements import AGREEMENT_SCHEMAS
from gateway.http.openapi_circulation import CIRCULATION
from gateway.http.openapi_pricing import PRICING_SCHEMAS
from gateway.http.schema_parts import (
    CELL,
    CURRENCY,
    ENUMS,
    EPSILON,
    EPSILON_IN,
    HASH,
    ID,
    INT,
    MONEY,
    NEXT,
    NULL_S,
    PERIOD,
    TIME,
    B,
    N,
    S,
    Schema,
    array,
    items,
    nullable,
    obj,
    ref,
    text,
)

__all__ = ["SCHEMAS", "Schema", "ref"]

_LOCATED = obj(line=INT, column={"type": ["integer", "string", "null"]}, message=S, code=S,
               doc="One problem, located: a line and column of a policy, or a column of a snapshot.")
_FIELD_ERROR = obj(("detail",), pointer={"type": "string", "description": "RFC 6901 pointer into the body."},
                   parameter={"type": "string", "description": "The query or header parameter."}, detail=S)

PROBLEM = obj(
    ("type", "title", "status", "detail", "code"),
    doc="An error (RFC 9457). `code` is stable; the other members beyond the five are per code.",
    type={"type": "string", "format": "uri"}, title=S, status=INT, detail=S,
    code={"type": "string", "description": "invalid_request, invalid_query, unauthorized, forbidden, "
                                           "budget_exhausted, not_found, dataset_suspended, dataset_withdrawn, "
                                           "policy_violation, rate_limited, … (API.md, Errors)."},
    instance={"type": "string", "description": "urn:request:<X-Request-ID>"},
    reasons=array(S, "policy_violation: every reason the policy refused."),
    position=obj(line=INT, column=nullable(INT), doc="invalid_query: where in the SQL."),
    errors=array(_FIELD_ERROR, "invalid_request: every field or parameter that did not fit its schema."),
    problems=array(_LOCATED, "A refused policy or snapshot: every problem."),
    epsilon_remaining=nullable(N),
    renews_on={"type": ["string", "null"], "description": "budget_exhausted: when the budget renews."},
    datasets=array(S, "unavailable: the datasets not ready."),
    error={"type": "string", "description": "The token endpoint: RFC 6749 §5.2's error code."},
    error_description={"type": "string", "description": "The token endpoint: §5.2's description."})

_BUDGET_LINE = obj(("dataset", "epsilon_limit", "epsilon_spent", "epsilon_remaining"), dataset=S,
                   period={**PERIOD, "description": "In an answer or a preview; /v1/budget says it once."},
                   epsilon_limit=EPSILON, epsilon_spent=EPSILON,
                   epsilon_remaining={**EPSILON, "description": "Never negative."},
                   delta_limit=N, delta_spent=N, delta_remaining=N)
_HALF_WIDTHS = {"type": "object", "additionalProperties": nullable(N)}
_ACCURACY = obj(("alpha", "columns"), alpha={"type": "number", "description": "1 - confidence level."},
                columns={**_HALF_WIDTHS, "description": "Per released column, the half-width of a (1 - alpha) "
                                                        "interval; null where no such bound exists."},
                rows=array(_HALF_WIDTHS, "The same per row of `rows`, in their order (a mean's interval "
                                         "depends on its group's size)."))
_COLUMN = obj(("name", "type", "classification", "group_by", "aggregate", "filter"), name=S, type=ref("ColumnType"),
              classification=ref("Classification"), group_by=B, aggregate=B, filter=B, description=S,
              categories=array({"type": ["string", "integer", "boolean"]}, "The public categories of a group key."),
              bounds={"type": "array", "items": N, "minItems": 2, "maxItems": 2,
                      "description": "Values are clipped to [low, high]."})

_SCHEMAS: dict[str, Schema] = {
    "Problem": PROBLEM,
    "OpenAPI": {"type": "object", "description": "An OpenAPI 3.1 document."},
    "Metrics": {"type": "string", "description": "Prometheus metrics in the text exposition format."},
    "Receipt": {"type": "string", "description": "A compact JWS (EdDSA, `kid` from the JWKS) whose payload "
                                                 "carries the query id and the released values."},
    "ReceiptDocument": obj(("receipt",), receipt={**S, "description": "The same compact JWS."}),
    "Html": {"type": "string", "description": "An HTML page."},
    # tokens and keys
    "TokenForm": obj(("grant_type",), grant_type={"type": "string", "enum": ["client_credentials"]},
                     client_id=S, client_secret=S),
    "Token": obj(("access_token", "token_type", "expires_in"), access_token={**S, "description": "A JWT."},
                 token_type={"type": "string", "enum": ["Bearer"]}, expires_in={**INT, "description": "Seconds."}),
    "Jwk": obj(("kty", "kid"), kty=S, kid=S, alg=S, crv=S, use=S, x=S, y=S, retired=B),
    "AuthorizationServerMetadata": obj(
        ("issuer", "token_endpoint", "jwks_uri", "grant_types_supported", "response_types_supported"),
        issuer=S, token_endpoint=S, jwks_uri=S, service_documentation=S, grant_types_supported=array(S),
        token_endpoint_auth_methods_supported=array(S), response_types_supported=array(S)),
    "JWKS": obj(("keys",), keys=array(ref("Jwk")),
                retired_keys=array(ref("Jwk"), "Keys that verify no token any more, only receipts they signed.")),
    "Health": obj(("status",), status=S),
    # the catalog
    "Column": _COLUMN,
    "PrivacyUnit": obj(("kind",), kind=ref("PrivacyUnitKind"),
                       max_contributions={**INT, "description": "identifier: rows per person at most."}),
    "Dataset": obj(("id", "title", "status", "columns"), id=S, title=S, description=S, source_department=S,
                   classification=ref("Classification"), status=ref("DatasetStatus"), queryable=B,
                   privacy_unit=ref("PrivacyUnit"), columns=array(ref("Column")), aggregates=array(ref("Aggregate")),
                   epsilon=obj(("min", "max"), min=N, max=N, doc="Epsilon per query, allowed range."),
                   private_keys=B, max_cells=INT,
                   price=obj(("per_call_minor", "currency"), per_call_minor=MONEY, cached_call_minor=MONEY,
                             currency=CURRENCY),
                   policy_version=HASH, registration=ref("RegistrationSummary")),
    "DatasetList": obj(("datasets",), datasets=array(ref("Dataset"))),
    # queries and the ledger
    "QueryIn": obj(("dataset", "epsilon"), False, dataset=ID,
                   sql=text("One SELECT of the subset (docs/query-language.md); send it or `plan`."),
                   plan={"type": "object", "description": "The JSON plan form (docs/query-language.md)."},
                   epsilon=EPSILON_IN, delta={**EPSILON_IN, "description": "0 unless private group keys."}),
    "Accuracy": _ACCURACY,
    "BudgetLine": _BUDGET_LINE,
    "UsageRef": obj(("usage_id", "price_minor", "currency"), usage_id=S, price_minor=MONEY, currency=CURRENCY),
    "QueryAnswer": obj(("query_id", "dataset", "columns", "rows", "accuracy", "epsilon_spent", "cached", "budget",
                        "usage"), query_id=S, dataset=S, columns=array(S), rows=array(array(CELL)),
                       accuracy=ref("Accuracy"), epsilon_spent=EPSILON, delta_spent=N,
                       cached={**B, "description": "true: the stored release of the same question this period, "
                                                   "at no privacy cost."},
                       budget=ref("BudgetLine"), usage=ref("UsageRef"), policy_version=HASH, snapshot_id=HASH),
    "Preview": obj(("dataset", "epsilon", "accuracy", "price", "budget", "would_fit"), dataset=S, epsilon=EPSILON,
                   delta=N, accuracy=ref("Accuracy"), threshold=nullable(N),
                   price=obj(("price_minor", "currency"), price_minor=MONEY, currency=CURRENCY),
                   budget=ref("BudgetLine"), would_fit=B),
    "Budget": obj(("period", "datasets"), period=PERIOD, datasets=array(ref("BudgetLine"))),
    "UsageRecord": obj(("usage_id", "query_id", "org_id", "dataset", "period", "cached", "price_minor", "currency",
                        "committed_at"), usage_id=S, query_id=S, org_id=S, client_id=S, dataset=S,
                       product_id=NULL_S, period=PERIOD, cached=B, epsilon=EPSILON, price_minor=MONEY,
                       currency=CURRENCY, price_version=S, committed_at=TIME, purpose_class=NULL_S, delta=N),
    "Usage": obj(("period", "items", "next"), period=PERIOD, items=array(ref("UsageRecord")), next=NEXT),
    "AuditEntry": obj(("seq", "at", "kind", "actor", "subject", "payload", "hash"), seq=INT, at=TIME, kind=S,
                      actor={**S, "description": "A client id, or `system`."}, subject=S,
                      payload={"type": "object", "additionalProperties": True,
                               "description": "What the kind of entry records (codes and ids, never a row)."},
                      hash=HASH),
    "AuditEntryList": items("AuditEntry"),
    "ReleaseSummary": obj(("query_id", "dataset", "epsilon_spent", "created_at"), query_id=S, dataset=S,
                          product_id=NULL_S, epsilon_spent=EPSILON, policy_version=HASH, snapshot_id=HASH,
                          created_at=TIME),
    "ReleaseList": items("ReleaseSummary"),
    "AuditVerdict": obj(("ok", "entries", "head"), ok=B, entries=INT, head=S, first_bad_seq=nullable(INT),
                        archived=INT, reason=S),
    "Release": obj(("query_id", "dataset", "release", "accuracy", "epsilon_spent"), query_id=S, dataset=S,
                   columns=array(S, "As answered (releases stored since answers are kept)."),
                   rows=array(array(CELL), "As answered."),
                   release=obj(("columns", "rows"), columns=array(S), rows=array(array(CELL))),
                   accuracy={"anyOf": [ref("Accuracy"), {
                       "type": "object", "additionalProperties": nullable(N),
                       "properties": {"rows": array(_HALF_WIDTHS, "Per row of the release, by source.")},
                       "description": "Half-widths by source column (releases stored before answers were kept)."}]},
                   epsilon_spent=EPSILON, delta_spent=N, policy_version=HASH, snapshot_id=HASH, created_at=TIME),
    # snapshots
    "Snapshot": obj(("id", "loaded_at", "origin", "current"), id=HASH, dataset=S, loaded_at=TIME, loaded_by=S,
                    origin=S, policy_version=HASH, current=B, inputs={"type": "object"},
                    rows=INT, bytes=INT,
                    warnings=array(obj(("code", "message"), code=S, message=S, column=NULL_S))),
    "SnapshotList": obj(("dataset", "current", "items", "next", "snapshots"), dataset=S, current=NULL_S,
                        items=array(ref("Snapshot")), next=NEXT,
                        snapshots=array(ref("Snapshot"), "The same page as `items` (the name before pages).")),
    "SnapshotUpload": {"type": "string", "format": "binary", "description": "Parquet or CSV bytes."},
}

SCHEMAS: dict[str, Schema] = {**ENUMS, **_SCHEMAS, **CIRCULATION, **PRICING_SCHEMAS, **AGREEMENT_SCHEMAS}
