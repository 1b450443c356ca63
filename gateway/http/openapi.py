"""The OpenAPI 3.1 document, generated from the app's route table: one operation per declared route.

Everything comes from the `Route` declarations (http/routing.py), the schemas they name
(http/openapi_schemas.py, the same schemas that validate request bodies) and one example per schema
(http/openapi_examples.py): so a route cannot exist without an operation, nor an operation without a
route, nor a body documented one way and checked another. The app builds the document once from its
own table and serves it from `app[OPENAPI]`; error answers and headers are named in openapi_parts.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from gateway.http.keys import OPENAPI
from gateway.http.openapi_examples import EXAMPLES, TEXT_EXAMPLES
from gateway.http.openapi_parts import HEADERS, PATH_PARAMS, TAGS, problem_response, problem_statuses
from gateway.http.openapi_schemas import SCHEMAS, ref
from gateway.http.params import CURSOR, LIMIT, Param
from gateway.http.routing import JSON, PUBLIC, Route, path_params, route

TITLE = "County data gateway"
VERSION = "1.0.0"
TOKEN_URL = "/oauth/token"
DESCRIPTION = """Metered, differentially private answers over the county's datasets.

Get a token with the OAuth 2.0 client-credentials grant (`POST /oauth/token`), then send it as
`Authorization: Bearer …` on every `/v1` call. Every error is `application/problem+json` (RFC 9457)
with a stable `code`. Lists that grow take `limit` and `cursor` and answer `{"items", "next"}`, the
next page's link also in a `Link: <…>; rel="next"` header. Money is an integer count of the
currency's minor unit; epsilon may be sent as a decimal string to keep it exact."""


def openapi_path(path: str) -> str:
    """aiohttp's `{name:regex}` -> OpenAPI's `{name}`."""
    for name in path_params(path):
        start = path.index("{" + name)
        path = path[:start] + "{" + name + "}" + path[path.index("}", start) + 1:]
    return path


def _tag(spec: Route) -> str:
    return spec.path.split("/")[2] if spec.path.startswith("/v1/") else "service"


def _param(p: Param) -> dict[str, Any]:
    return {"name": p.name, "in": p.where, "required": False, "description": p.description,
            "schema": p.schema, "example": p.example}


def _path_param(name: str) -> dict[str, Any]:
    schema, description, example = PATH_PARAMS.get(name, ({"type": "string"}, "An id.", "x"))
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema,
            "example": example}


def _parameters(spec: Route) -> list[dict[str, Any]]:
    out = [_path_param(n) for n in path_params(spec.path)] + [_param(p) for p in spec.params]
    if spec.paginated:
        out += [_param(LIMIT), _param(CURSOR)]
    return out


def _media(schema_name: str | None, media_type: str) -> dict[str, Any]:
    if schema_name is None:
        return {"schema": {"type": "string"}}
    if media_type == JSON or media_type.endswith("+json"):
        out = {"schema": ref(schema_name)}
        if schema_name in EXAMPLES:
            out["example"] = EXAMPLES[schema_name]
        return out
    example = TEXT_EXAMPLES.get((schema_name, media_type), EXAMPLES.get(schema_name))
    schema = ref(schema_name) if SCHEMAS.get(schema_name, {}).get("type") == "string" else {"type": "string"}
    return {"schema": schema, **({"example": example} if isinstance(example, str) else {})}


def _success(spec: Route) -> dict[str, Any]:
    headers = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}
    if spec.paginated:
        headers["Link"] = {"$ref": "#/components/headers/Link"}
    headers.update({h: {"$ref": f"#/components/headers/{h}"} for h in spec.headers})
    content = {t: _media(spec.answer_schema(t), t) for t in spec.answer_types}
    return {"description": spec.summary, "headers": headers, "content": content}


def operation(spec: Route) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": spec.name, "summary": spec.summary, "description": spec.description,
                          "tags": [_tag(spec)]}
    params = _parameters(spec)
    if params:
        op["parameters"] = params
    if spec.body:
        op["requestBody"] = {"required": not spec.body_optional,
                             "content": {t: _media(spec.body, t) for t in spec.body_types}}
    op["responses"] = {str(spec.status): _success(spec),
                       **{str(s): problem_response(s, spec) for s in problem_statuses(spec)}}
    if spec.roles:
        op["security"] = [{"oauth2": []}]
        op["x-roles"] = sorted(spec.roles)
    return op


def document(routes: Iterable[Route]) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document for a route table."""
    paths: dict[str, dict[str, Any]] = {}
    for spec in routes:
        paths.setdefault(openapi_path(spec.path), {})[spec.method.lower()] = operation(spec)
    used = {tag for item in paths.values() for op in item.values() for tag in op["tags"]}
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "tags": [{"name": name, "description": text} for name, text in TAGS.items() if name in used],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": SCHEMAS,
            "headers": HEADERS,
            "securitySchemes": {"oauth2": {
                "type": "oauth2", "description": "OAuth 2.0 client credentials (RFC 6749 §4.4); the access "
                                                 "token is a JWT, sent as `Authorization: Bearer …`.",
                "flows": {"clientCredentials": {"tokenUrl": TOKEN_URL, "scopes": {}}}}},
        },
    }


def setup_openapi(app: web.Application, routes: Iterable[Route]) -> None:
    app[OPENAPI] = document(routes)


@route("GET", "/openapi.json", PUBLIC, answer="OpenAPI")
async def get_openapi(request: web.Request) -> web.Response:
    """This OpenAPI 3.1 document.

    Generated from the gateway's own route table; the request schemas in it are the ones that
    validate request bodies. Feed it to a client generator, or read it rendered at `/docs`.
    """
    return web.json_response(request.app[OPENAPI])


ROUTES: tuple[Route, ...] = (get_openapi,)
