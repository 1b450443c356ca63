"""The named parts of the OpenAPI document besides schemas: response headers, path parameters, tags,
and the error answers each operation can give (which statuses, with which headers and example)."""

from __future__ import annotations

from typing import Any

from gateway.http.openapi_schemas import ref
from gateway.http.routing import Route, path_params
from gateway.http.schema_parts import ID, PERIOD, PRODUCT_SLUG, SLUG, Schema

PROBLEM_TYPE = "application/problem+json"


def _header(description: str, schema: Schema, example: Any) -> dict[str, Any]:
    return {"description": description, "schema": schema, "example": example}


_SECONDS = {"type": "integer", "minimum": 0}
HEADERS: dict[str, Any] = {
    "X-Request-ID": _header("The caller's own X-Request-ID if it sent a sane one, else a new id; the same id is "
                            "in the access log and in a problem's `instance`.", {"type": "string"},
                            "a7b5afa08b56402eb93431769463f93b"),
    "Link": _header("The next page: `<URL>; rel=\"next\"` (absent on the last page).", {"type": "string"},
                    '</v1/usage?limit=50&cursor=WyIyMDI2LTExLTA3Il0>; rel="next"'),
    "Idempotent-Replayed": _header("`true` when this is the stored answer of an earlier request with the same "
                                   "Idempotency-Key: nothing was spent or billed again.",
                                   {"type": "string", "enum": ["true"]}, "true"),
    "Retry-After": _header("Seconds to wait before trying again.", _SECONDS, 2),
    "RateLimit-Limit": _header("The client's bucket size (requests).", _SECONDS, 40),
    "RateLimit-Remaining": _header("Requests left in the bucket now.", _SECONDS, 0),
    "RateLimit-Reset": _header("Seconds until the bucket has room again.", _SECONDS, 1),
    "WWW-Authenticate": _header("The bearer scheme and what was wrong (RFC 6750).", {"type": "string"},
                                'Bearer error="invalid_token"'),
}

PATH_PARAMS: dict[str, tuple[Schema, str, Any]] = {
    "dataset": (ID, "A dataset id from the catalog.", "residents"),
    "period": (PERIOD, "A calendar month, YYYY-MM.", "2026-11"),
    "query_id": (ID, "The `query_id` of an answer.", "d6e862db885d65b2e60a96b4ab5b64d7"),
    "org_id": (SLUG, "An organisation id.", "harbour-bank"),
    "client_id": (SLUG, "A client id.", "harbour-app"),
    "application_id": (ID, "An application's `id`.", "app-da21de8bdd7244bb"),
    "grant_id": (ID, "A grant's `id`.", "demo-grant-1"),
    "product_id": (PRODUCT_SLUG, "A data product's `id`.", "income-by-township"),
    "version": ({"type": "string", "pattern": "^[1-9][0-9]{0,5}$"}, "A product version number.", "1"),
    "year": ({"type": "string", "pattern": "^2[0-9]{3}$"}, "A calendar year, YYYY (2000 to 2999).", "2026"),
    "voucher_id": (ID, "A voucher's `voucher_id`.", "v-2026-0001"),
}

TAGS: dict[str, str] = {
    "service": "Tokens, keys, health, metrics and this document.",
    "datasets": "The catalog; dataset status, policies and snapshots.",
    "queries": "Ad-hoc differentially private queries, their previews and stored releases.",
    "budget": "The requester's privacy budget this period.",
    "usage": "Usage records: one per billed call.",
    "audit": "The hash-chained audit log.",
    "requesters": "Organisations (requesters and merchants) and their clients.",
    "clients": "One client: its secret and status.",
    "applications": "Applications for grants, their approval and co-signature.",
    "grants": "Grants: a requester's contract on a dataset or product.",
    "agreements": "Authorisation agreements (授权运营协议): what every grant and product stands on.",
    "products": "Data products: drafted by merchants, approved by the bureau, invoked by requesters.",
    "invoices": "A requester's monthly invoice (JSON or CSV).",
    "revenue": "Monthly revenue statements of the bureau, source departments and merchants.",
    "credit-notes": "Credits of invoiced usage.",
    "public": "What anyone may read without a token: the price board.",
    "price-caps": "Fee caps on prices, set by the bureau.",
    "vouchers": "Data vouchers that pay a requester's invoices.",
    "reports": "The yearly disclosure.",
}

# status -> (description, code of the example, detail of the example, extra headers)
_PROBLEMS: dict[int, tuple[str, str, str, tuple[str, ...]]] = {
    400: ("Malformed or invalid request: bad JSON, a field or parameter that does not fit its schema "
          "(`errors` names each), or SQL outside the subset (`invalid_query`, with a `position`).",
          "invalid_request", "unknown field(s): cap", ()),
    401: ("No valid bearer token (absent, expired, wrongly signed), or a suspended client.", "unauthorized",
          "A valid bearer token is required.", ("WWW-Authenticate",)),
    403: ("The caller's role does not allow this, it holds no grant for it, or the privacy budget would be "
          "exceeded (`budget_exhausted`).", "forbidden", "your role does not allow this", ()),
    404: ("Unknown, or not visible to the caller (another party's object answers exactly like a missing one).",
          "not_found", "no such resource", ()),
    409: ("A conflict with the current state: the dataset is suspended (`dataset_suspended`), a request with "
          "the same Idempotency-Key is still running, or the object is not in a state that allows this.",
          "dataset_suspended", "the dataset is suspended", ()),
    410: ("The dataset has been withdrawn for good (`dataset_withdrawn`).", "dataset_withdrawn",
          "the dataset has been withdrawn", ()),
    413: ("The body is over the configured limit.", "payload_too_large",
          "The request body is over the configured limit.", ()),
    415: ("The body is not of a media type this operation takes.", "unsupported_media_type",
          "send the body as application/json", ()),
    422: ("Understood but refused: the policy does not allow the query (`policy_violation`, with every "
          "reason), or an Idempotency-Key reused with a different body.", "policy_violation",
          "column 'person_id' may not be aggregated", ()),
    429: ("Rate limited: wait Retry-After seconds.", "rate_limited",
          "Too many requests from this client; retry after the time given.",
          ("Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")),
    500: ("An internal error; the body never carries internals. After data was touched: `release_failed`.",
          "internal_error", "The server could not handle the request.", ()),
    503: ("Not ready (starting, draining, a dataset not loaded, the sandbox down): retry after Retry-After.",
          "unavailable", "the sandbox is not running", ("Retry-After",)),
}


def problem_statuses(spec: Route) -> list[int]:
    """The error statuses an operation can answer, from what its declaration says it takes."""
    found = set(spec.problems) | {500}
    if spec.body or spec.params or spec.paginated or {"period", "year"} & set(path_params(spec.path)):
        found.add(400)
    if spec.body:
        found |= {413, 415}
    if spec.roles:
        found |= {401, 403, 429}
    if path_params(spec.path):
        found.add(404)
    return sorted(found)


def problem_response(status: int, spec: Route) -> dict[str, Any]:
    description, code, detail, headers = _PROBLEMS[status]
    example = {"type": f"https://gateway.county.example/problems/{code.replace('_', '-')}", "title": code,
               "status": status, "detail": detail, "code": code,
               "instance": "urn:request:a7b5afa08b56402eb93431769463f93b"}
    named = ("X-Request-ID", *headers)
    return {"description": description,
            "headers": {h: {"$ref": f"#/components/headers/{h}"} for h in named},
            "content": {PROBLEM_TYPE: {"schema": ref("Problem"), "example": example}}}
