"""The OpenAPI 3.1 document, generated from the route table: one operation per declared route.

Paths, methods, roles and path parameters come from `all_routes()` itself; what the table
cannot say (body and answer schemas, query parameters) is attached to each handler with
`@api(...)`, or, for handlers written before this module, listed by route name in `KNOWN`.
So a route cannot exist without an operation, nor an operation without a route.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from gateway.http.openapi_pricing import PRICING_SCHEMAS
from gateway.http.openapi_schemas import SCHEMAS, ref
from gateway.http.routing import PUBLIC, Route, route

H = TypeVar("H")
TITLE = "County data gateway"
VERSION = "1.0.0"
_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


@dataclass(frozen=True)
class Doc:
    """What a route's table entry cannot say about it."""

    request: str | None = None
    response: str | None = None
    status: int = 200
    query: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    alternatives: tuple[str, ...] = ()
    request_types: tuple[str, ...] = ("application/json",)
    response_type: str = "application/json"


def api(**doc: Any) -> Callable[[H], H]:
    """Attach schema data to a handler (apply it below `@route`)."""
    def attach(handler: H) -> H:
        handler.openapi = Doc(**doc)  # type: ignore[attr-defined]
        return handler
    return attach


# Routes whose handlers were written without `@api`, by route name.
KNOWN: dict[str, Doc] = {
    "token": Doc(request="TokenForm", response="Token", request_types=("application/x-www-form-urlencoded",)),
    "jwks": Doc(response="JWKS"),
    "healthz": Doc(response="Health"),
    "readyz": Doc(response="Health"),
    "list_datasets": Doc(response="DatasetList"),
    "get_dataset": Doc(response="Dataset"),
    "metrics": Doc(response_type="text/plain"),
    "post_query": Doc(request="QueryIn", response="QueryAnswer", headers=("Idempotency-Key",)),
    "post_preview": Doc(request="QueryIn", response="Preview"),
    "get_budget": Doc(response="Budget"),
    "get_usage": Doc(response="Usage", query=("period",)),
    "get_audit_verify": Doc(response="AuditVerdict"),
    "get_release": Doc(response="Release"),
    "upload_snapshot": Doc(request="SnapshotUpload", response="Snapshot", status=201,
                           request_types=("application/vnd.apache.parquet", "text/csv")),
    "list_snapshots": Doc(response="SnapshotList", query=("limit",)),
}

_QUERY = {
    "period": {"type": "string", "pattern": r"^\d{4}-(0[1-9]|1[0-2])$"},
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
    "dry_run": {"type": "boolean"},
}
_HEADERS = {"Idempotency-Key": {"type": "string", "minLength": 1, "maxLength": 255}}


def doc_of(spec: Route) -> Doc:
    return getattr(spec.handler, "openapi", None) or KNOWN.get(spec.name) or Doc()


def path_params(path: str) -> list[str]:
    return _PATH_PARAM.findall(path)


def openapi_path(path: str) -> str:
    return _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": ref("Problem")}}}


def _summary(spec: Route) -> str:
    text = (spec.handler.__doc__ or "").strip().splitlines()
    return text[0] if text else spec.name.replace("_", " ").capitalize()


def operation(spec: Route) -> dict[str, Any]:
    doc = doc_of(spec)
    op: dict[str, Any] = {"operationId": spec.name, "summary": _summary(spec),
                          "tags": [spec.path.split("/")[2] if spec.path.startswith("/v1/") else "service"]}
    params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in path_params(spec.path)]
    params += [{"name": n, "in": "query", "required": False, "schema": _QUERY.get(n, {"type": "string"})}
               for n in doc.query]
    params += [{"name": n, "in": "header", "required": False, "schema": _HEADERS.get(n, {"type": "string"})}
               for n in doc.headers]
    if params:
        op["parameters"] = params
    if doc.request:
        op["requestBody"] = {"required": True,
                             "content": {t: {"schema": ref(doc.request)} for t in doc.request_types}}
    op["responses"] = _responses(spec, doc)
    if spec.roles:
        op["security"] = [{"bearer": []}]
        op["x-roles"] = sorted(spec.roles)
    return op


def _responses(spec: Route, doc: Doc) -> dict[str, Any]:
    schema = ref(doc.response) if doc.response else {"type": "string"}
    content = {doc.response_type: {"schema": schema}}
    content.update({t: {"schema": {"type": "string"}} for t in doc.alternatives})
    out: dict[str, Any] = {str(doc.status): {"description": "Success", "content": content}}
    if doc.request:
        out["400"] = _problem("Malformed or invalid request")
    if spec.roles:
        out["401"] = _problem("No valid bearer token")
        out["403"] = _problem("The caller's role or grant does not allow this")
        out["429"] = _problem("Rate limited; see Retry-After and RateLimit-* headers")
    if path_params(spec.path):
        out["404"] = _problem("Unknown, or not visible to the caller")
    out["default"] = _problem("An error, as RFC 9457 problem+json")
    return out


def document(routes: Iterable[Route]) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document for a route table."""
    paths: dict[str, dict[str, Any]] = {}
    for spec in routes:
        paths.setdefault(openapi_path(spec.path), {})[spec.method.lower()] = operation(spec)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION,
                 "description": "Metered, differentially private answers over county datasets. "
                                "Every error is application/problem+json (RFC 9457)."},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {**SCHEMAS, **PRICING_SCHEMAS},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                           "description": "An access token from POST /oauth/token."}},
        },
    }


@functools.cache
def served_document() -> dict[str, Any]:
    from gateway.http.app import all_routes  # the app imports this module: resolve at first call

    return document(all_routes())


@route("GET", "/openapi.json", PUBLIC)
@api(response="OpenAPI")
async def get_openapi(request: web.Request) -> web.Response:
    """This OpenAPI 3.1 document."""
    return web.json_response(served_document())


ROUTES: tuple[Route, ...] = (get_openapi,)
