"""JSON Schemas of the API's bodies, for the OpenAPI document's `components.schemas`."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def obj(required: tuple[str, ...] = (), additional: bool = True, **props: Schema) -> Schema:
    out: Schema = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    if not additional:
        out["additionalProperties"] = False
    return out


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def items(name: str) -> Schema:
    return obj(("items",), items={"type": "array", "items": ref(name)})


S: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
N: Schema = {"type": "number"}
B: Schema = {"type": "boolean"}
TIME: Schema = {"type": ["string", "null"], "format": "date-time"}
NULL_S: Schema = {"type": ["string", "null"]}
ANY_OBJ: Schema = {"type": "object"}
PERIOD: Schema = {"type": "string", "pattern": r"^\d{4}-(0[1-9]|1[0-2])$"}
SCALAR: Schema = {"type": ["string", "integer", "number", "boolean"]}
MONEY: Schema = {"type": "integer", "description": "An amount in the currency's minor unit."}
EPSILON: Schema = {"type": ["number", "string"], "description": "A positive decimal (a string keeps it exact)."}

PROBLEM = obj(("type", "title", "status", "detail", "code"), type=S, title=S, status=INT, detail=S, code=S,
              instance=S, reasons={"type": "array", "items": S},
              problems={"type": "array", "items": obj(line=INT, column=INT, message=S)})

_CLIENT = obj(("client_id", "org_id", "roles", "status"), client_id=S, org_id=S,
              roles={"type": "array", "items": S}, status={"enum": ["active", "suspended"]}, created_at=TIME)

_PARAMETER = obj(("name", "type", "example"), name=S, type={"enum": ["integer", "number", "string", "boolean"]},
                 description=S, minimum=N, maximum=N, allowed={"type": "array", "items": SCALAR},
                 default=SCALAR, example=SCALAR)

_DRAFT_FIELDS: dict[str, Schema] = {
    "title": S, "description": S, "sql": {"type": "string", "description": "SQL with `:name` parameters in WHERE."},
    "parameters": {"type": "array", "items": ref("Parameter")}, "epsilon": EPSILON, "delta": EPSILON,
    "price_minor": MONEY, "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    "price_model": {"enum": ["per_call", "per_month", "per_cell"]}, "cached_price_minor": MONEY,
    "trial_price_minor": MONEY, "trial_until": {"type": "string", "format": "date"},
}
PURPOSE_CLASS: Schema = {"enum": ["public_governance", "public_interest", "industry"]}

_INVOICE_LINE = obj(("line", "kind", "dataset", "quantity", "amount_minor", "currency"), line=INT,
                    kind={"enum": ["usage", "credit", "carry"]}, dataset=S, product_id=NULL_S, usage_period=PERIOD,
                    cached=B,
                    price_version=S, policy_version=S, merchant=NULL_S, quantity=INT,
                    unit_price_minor={"type": ["integer", "null"]}, amount_minor=MONEY, currency=S, reference=S,
                    vouchers_minor=MONEY)

_STATEMENT = obj(("party", "period", "lines", "total_minor"), party=S, period=PERIOD, status=S, currency=S,
                 lines={"type": "array", "items": obj(dataset=S, product_id=NULL_S, currency=S, calls=INT,
                                                      amount_minor=MONEY, special_fund_minor=MONEY)},
                 total_minor=MONEY, totals=ANY_OBJ, special_fund_minor=MONEY)

_BUDGET_LINE = obj(dataset=S, period=PERIOD, epsilon_limit=N, epsilon_spent=N, epsilon_remaining=N,
                   delta_limit=N, delta_spent=N, delta_remaining=N)

SCHEMAS: dict[str, Schema] = {
    "Problem": PROBLEM,
    "OpenAPI": {"type": "object", "description": "An OpenAPI 3.1 document."},
    # the foundation, the engine and the ledger (API.md)
    "TokenForm": obj(("grant_type",), grant_type={"const": "client_credentials"}, client_id=S, client_secret=S),
    "Token": obj(("access_token", "token_type", "expires_in"), access_token=S, token_type={"const": "Bearer"},
                 expires_in=INT),
    "JWKS": obj(("keys",), keys={"type": "array", "items": ANY_OBJ}),
    "AuthorizationServerMetadata": obj(
        ("issuer", "token_endpoint", "jwks_uri", "grant_types_supported", "response_types_supported"),
        issuer=S, token_endpoint=S, jwks_uri=S, service_documentation=S,
        grant_types_supported={"type": "array", "items": S},
        token_endpoint_auth_methods_supported={"type": "array", "items": S},
        response_types_supported={"type": "array", "items": S}),
    "Health": obj(("status",), status=S),
    "Dataset": obj(("id", "title", "status", "columns"), id=S, title=S, description=S, source_department=S,
                   status={"enum": ["active", "suspended", "withdrawn"]}, privacy_unit=ANY_OBJ,
                   columns={"type": "array", "items": ANY_OBJ}, price=ANY_OBJ, policy_version=S),
    "DatasetList": obj(("datasets",), datasets={"type": "array", "items": ref("Dataset")}),
    "QueryIn": obj(("dataset", "epsilon"), False, dataset=S, sql=S, plan=ANY_OBJ, epsilon=EPSILON, delta=EPSILON),
    "QueryAnswer": obj(("query_id", "dataset", "columns", "rows", "accuracy", "epsilon_spent", "cached", "budget",
                        "usage"), query_id=S, dataset=S, columns={"type": "array", "items": S},
                       rows={"type": "array", "items": {"type": "array"}}, accuracy=ANY_OBJ, epsilon_spent=N,
                       delta_spent=N, cached=B, budget=_BUDGET_LINE,
                       usage=obj(usage_id=S, price_minor=MONEY, currency=S)),
    "Preview": obj(("dataset", "epsilon", "accuracy", "price", "budget"), dataset=S, epsilon=N, delta=N,
                   accuracy=ANY_OBJ, price=ANY_OBJ, budget=_BUDGET_LINE, would_fit=B),
    "Budget": obj(("period", "datasets"), period=PERIOD, datasets={"type": "array", "items": _BUDGET_LINE}),
    "Usage": obj(("period", "items"), period=PERIOD, items={"type": "array", "items": ANY_OBJ}),
    "AuditVerdict": obj(("ok", "entries", "head"), ok=B, entries=INT, head=S),
    "Release": obj(("query_id", "dataset", "release", "accuracy", "epsilon_spent"), query_id=S, dataset=S,
                   columns={"type": "array", "items": S}, rows={"type": "array", "items": {"type": "array"}},
                   release=obj(("columns", "rows"), columns={"type": "array", "items": S},
                               rows={"type": "array", "items": {"type": "array"}}),
                   accuracy=ANY_OBJ, epsilon_spent=N, delta_spent=N, policy_version=S, snapshot_id=S,
                   created_at=TIME),
    "Snapshot": ANY_OBJ,
    "SnapshotList": obj(("dataset", "snapshots"), dataset=S, current=NULL_S,
                        snapshots={"type": "array", "items": ref("Snapshot")}),
    "SnapshotUpload": {"type": "string", "format": "binary"},
    # circulation
    "OrgIn": obj(("org_id", "name"), False, org_id=S, name=S, kind={"enum": ["requester", "merchant"]}),
    "Org": obj(("org_id", "name", "kind", "status", "clients"), org_id=S, name=S, kind=S,
               status={"enum": ["active", "suspended"]}, created_at=TIME,
               clients={"type": "array", "items": ref("Client")}),
    "OrgList": items("Org"),
    "ClientIn": obj(("client_id",), False, client_id=S),
    "Client": _CLIENT,
    "ClientSecret": {"allOf": [ref("Client"), obj(("client_secret",), client_secret=S)],
                     "description": "The secret appears in this answer only."},
    "Reason": obj((), False, reason=S),
    "ReasonRequired": obj(("reason",), False, reason=S),
    "DatasetStatus": obj(("dataset", "status"), dataset=S, status=S, previous_status=S, grants_ended=INT,
                         applications_closed=INT),
    "PolicyCurrent": obj(("dataset", "version", "document"), dataset=S, owner=S, version=S, document=ANY_OBJ,
                         versions={"type": "array", "items": obj(version=S, created_at=TIME, created_by=S)}),
    "PolicyText": {"type": "string", "description": "A dataset policy in YAML (or JSON), per policy.schema.json."},
    "PolicyChange": obj(("dataset", "version", "changes", "published"), dataset=S, previous_version=NULL_S,
                        version=S, published=B,
                        changes={"type": "array", "items": obj(path=S, old={}, new={}, change=S)}),
    "ApplicationIn": obj(("purpose", "epsilon_per_period"), False, dataset=S, product_id=S, purpose=S,
                         epsilon_per_period=EPSILON, valid_until={"type": "string", "format": "date-time"},
                         purpose_class=PURPOSE_CLASS),
    "Application": obj(("id", "org_id", "dataset", "status"), id=S, org_id=S, client_id=S, dataset=S,
                       product_id=NULL_S, purpose=S, epsilon_per_period=N, valid_until_requested=TIME,
                       status={"enum": ["pending", "approved", "rejected", "closed"]}, approvals=ANY_OBJ,
                       epsilon_approved={"type": ["number", "null"]}, valid_until=TIME, reason=NULL_S,
                       grant_id=NULL_S, created_at=TIME, updated_at=TIME, purpose_class=PURPOSE_CLASS,
                       purpose_class_approved={"enum": [*PURPOSE_CLASS["enum"], None]}),
    "ApplicationList": items("Application"),
    "ApprovalIn": obj((), False, epsilon_per_period=EPSILON, valid_until={"type": "string", "format": "date-time"},
                      purpose_class=PURPOSE_CLASS),
    "Grant": obj(("id", "grant_id", "org_id", "dataset", "status"), id=S, grant_id=S, org_id=S, dataset=S,
                 product_id=NULL_S,
                 epsilon_per_period=N, valid_from=TIME, valid_until=TIME,
                 status={"enum": ["active", "expired", "revoked", "ended"]}, created_at=TIME,
                 purpose_class=PURPOSE_CLASS),
    "GrantList": items("Grant"),
    "OdrlAgreement": {"type": "object", "required": ["@context", "@type", "uid", "permission"], "properties": {
        "@context": {"type": "array"}, "@type": {"const": "Agreement"}, "uid": S,
        "assigner": {"type": "array"}, "assignee": ANY_OBJ, "target": ANY_OBJ,
        "permission": {"type": "array", "items": ANY_OBJ}, "prohibition": {"type": "array", "items": ANY_OBJ}}},
    "Parameter": _PARAMETER,
    "Product": obj(("id", "version", "title", "dataset", "parameters", "epsilon_per_call", "price"), id=S,
                   version=INT, title=S, description=S, dataset=S, merchant=S,
                   parameters={"type": "array", "items": ref("Parameter")}, columns={"type": "array", "items": S},
                   epsilon_per_call=N, price=obj(per_call_minor=MONEY, currency=S),
                   status={"enum": ["published", "suspended", "retired"]}, dataset_status=S, published_at=TIME),
    "ProductList": items("Product"),
    "InvokeIn": obj((), False, params={"type": "object", "additionalProperties": SCALAR}),
    "ProductDraftIn": obj(("id", "dataset", "title", "sql", "epsilon", "price_minor"), False,
                          id={"type": "string", "pattern": "^[a-z][a-z0-9-]{2,62}$"}, dataset=S, **_DRAFT_FIELDS),
    "ProductVersionIn": obj(("title", "sql", "epsilon", "price_minor"), False, **_DRAFT_FIELDS),
    "ProductVersion": obj(("id", "version", "status", "definition"), id=S, version=INT,
                          status={"enum": ["draft", "submitted", "published", "superseded", "rejected",
                                           "discarded"]},
                          dataset=S, merchant=S, definition=ANY_OBJ, definition_hash=S, policy_version=S,
                          created_at=TIME, submitted_at=TIME, decided_by=NULL_S, decided_at=TIME, reason=NULL_S,
                          sale_status={"enum": ["published", "suspended", "retired"]}),
    "ProductVersionList": items("ProductVersion"),
    "TryIn": obj((), False, params={"type": "object", "additionalProperties": SCALAR}),
    "TwinAnswer": obj(("columns", "rows", "twin"), id=S, version=INT, params=ANY_OBJ,
                      columns={"type": "array", "items": S}, rows={"type": "array", "items": {"type": "array"}},
                      twin=obj(synthetic=B, rows=INT, exact=B), epsilon_per_call=N),
    "InvoiceLine": _INVOICE_LINE,
    "Invoice": obj(("invoice_id", "org_id", "period", "status", "currency", "lines", "total_minor"), invoice_id=S,
                   org_id=S, period=PERIOD, status={"enum": ["open", "closed"]}, currency=S,
                   lines={"type": "array", "items": ref("InvoiceLine")}, total_minor=MONEY, totals=ANY_OBJ,
                   vouchers_applied_minor=MONEY, amount_due_minor=MONEY,
                   vouchers={"type": "array", "items": obj(("voucher_id", "amount_minor"), voucher_id=S,
                                                           amount_minor=MONEY)}),
    "Statement": _STATEMENT,
    "RevenueStatements": obj(("period", "status", "statements"), period=PERIOD, status=S, currency=S,
                             invoices_total_minor=MONEY, statements={"type": "array", "items": ref("Statement")},
                             vouchers_applied_minor=MONEY),
    "CreditNoteIn": obj(("org_id", "reason"), False, org_id=S,
                        usage_ids={"type": "array", "items": S, "minItems": 1, "maxItems": 1000},
                        invoice=obj(("period", "line"), False, period=PERIOD, line=INT),
                        amount_minor={**MONEY, "description": "At most what is left to credit; all of it if left out."},
                        reason=S, dataset=S, product_id=S, refers_to_period=PERIOD),
    "CreditNote": obj(("id", "org_id", "amount_minor", "usage_ids"), id=S, org_id=S, dataset=S, product_id=NULL_S,
                      refers_to_period=PERIOD, usage_ids={"type": "array", "items": S}, amount_minor=MONEY,
                      currency=S, policy_version=S, merchant=NULL_S, reason=S, created_at=TIME,
                      invoice_period=PERIOD, creditable_minor=MONEY),
}
