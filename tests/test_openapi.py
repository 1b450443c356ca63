"""The OpenAPI document and the route table agree; the document is complete enough to generate a
working client (descriptions, examples that fit their schemas, item types, named enums, nullable
marked, errors and headers per operation, the OAuth2 flow); real answers match the documented schemas;
`/docs` renders the same document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from gateway.http.openapi import document, openapi_path
from gateway.http.openapi_examples import EXAMPLES
from gateway.http.routes import all_routes
from gateway.http.routing import path_params
from gateway.http.schema_parts import ENUMS
from tests.support import Gateway, call

METHODS = {"get", "put", "post", "delete", "patch"}
FREE_FORM = {"plan", "document", "inputs", "OpenAPI"}  # objects whose shape another schema owns


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return document(all_routes())


def operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m.upper(), p): op for p, item in spec["paths"].items() for m, op in item.items() if m in METHODS}


def nodes(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, dict) in a JSON tree."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from nodes(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from nodes(value, f"{path}/{i}")


def validator(spec: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**schema, "components": spec["components"]})


def test_every_route_has_one_operation_and_every_operation_a_route(spec: dict[str, Any]) -> None:
    routes = {(r.method, openapi_path(r.path)): r for r in all_routes()}
    assert set(operations(spec)) == set(routes)
    ids = [op["operationId"] for op in operations(spec).values()]
    assert len(ids) == len(set(ids))


def test_roles_security_and_path_parameters_follow_the_table(spec: dict[str, Any]) -> None:
    ops = operations(spec)
    for r in all_routes():
        op = ops[(r.method, openapi_path(r.path))]
        assert op.get("x-roles", []) == sorted(r.roles), r.path
        assert op.get("security") == ([{"oauth2": []}] if r.roles else None), r.path
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(path_params(r.path)), r.path


def test_every_route_carries_schema_data() -> None:
    """A route documented only by its table entry would describe no body or answer."""
    bare = [r.name for r in all_routes() if r.answer is None]
    assert bare == []


def test_refs_resolve_and_schemas_are_valid_json_schema(spec: dict[str, Any]) -> None:
    components = spec["components"]
    for schema in components["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    refs = {node["$ref"] for _, node in nodes(spec) if "$ref" in node}
    assert refs
    for r in refs:
        section, name = r.removeprefix("#/components/").split("/")
        assert name in components[section], r
    assert spec["openapi"] == "3.1.0"


def test_every_operation_has_summary_description_and_an_example(spec: dict[str, Any]) -> None:
    for key, op in operations(spec).items():
        assert op["summary"] and op["description"], key
        success = next(iter(op["responses"].values()))
        assert any("example" in c for c in success["content"].values()), f"{key} answers no example"


def test_every_example_fits_its_schema(spec: dict[str, Any]) -> None:
    checked = 0
    for where, node in nodes(spec["paths"]):
        if "example" in node and "schema" in node:
            errors = list(validator(spec, node["schema"]).iter_errors(node["example"]))
            assert errors == [], (where, [e.message for e in errors])
            checked += 1
    for name, example in EXAMPLES.items():
        errors = list(validator(spec, {"$ref": f"#/components/schemas/{name}"}).iter_errors(example))
        assert errors == [], (name, [e.message for e in errors])
    assert checked > 100


def test_schemas_are_complete(spec: dict[str, Any]) -> None:
    """Arrays say their item type, objects their properties (or a value type), enums are named once."""
    schemas = spec["components"]["schemas"]
    loose = []
    for where, node in nodes(schemas):
        kinds = node.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if "array" in kinds and "items" not in node:
            loose.append(f"{where}: array without items")
        name = where.rsplit("/", 1)[-1]
        if "object" in kinds and not {"properties", "additionalProperties"} & set(node) and name not in FREE_FORM:
            loose.append(f"{where}: object without properties")
        if len(node.get("enum", [])) > 1 and where.split("/")[1] not in ENUMS:
            loose.append(f"{where}: an enum not named as a component")
        if where.count("/") == 1 and "enum" in node:
            assert name in ENUMS, name
    assert loose == []


def test_nullable_fields_are_marked(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    for name, field in [("Grant", "valid_until"), ("Application", "grant_id"), ("Preview", "threshold"),
                        ("UsageRecord", "product_id"), ("ProductVersion", "reason")]:
        kinds = schemas[name]["properties"][field].get("type", [])
        assert "null" in kinds, (name, field)
    accuracy = schemas["Accuracy"]["properties"]["columns"]["additionalProperties"]
    assert "null" in accuracy["type"]


def test_errors_are_named_per_operation_with_the_problem_schema(spec: dict[str, Any]) -> None:
    for key, op in operations(spec).items():
        errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
        assert "500" in errors, key
        if op.get("parameters") or op.get("requestBody") or op.get("security"):
            assert any(s.startswith("4") for s in errors), key
        assert "default" not in op["responses"], key
        for status, answer in errors.items():
            assert answer["content"]["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"}, (key, status)
        if op.get("security"):
            assert {"401", "403", "429"} <= set(errors), key


def test_response_headers_are_documented(spec: dict[str, Any]) -> None:
    named = set(spec["components"]["headers"])
    assert {"Idempotent-Replayed", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
            "X-Request-ID", "Link"} <= named
    ops = operations(spec)
    for key, op in ops.items():
        for status, answer in op["responses"].items():
            assert "X-Request-ID" in answer["headers"], (key, status)
        if "429" in op["responses"]:
            assert {"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(
                op["responses"]["429"]["headers"]), key
    for key in (("POST", "/v1/queries"), ("POST", "/v1/products/{product_id}/invoke")):
        assert "Idempotent-Replayed" in ops[key]["responses"]["200"]["headers"]
        assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in ops[key]["parameters"])


def test_the_security_scheme_is_the_client_credentials_flow(spec: dict[str, Any]) -> None:
    scheme = spec["components"]["securitySchemes"]["oauth2"]
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["clientCredentials"]["tokenUrl"] == "/oauth/token"
    assert ("POST", "/oauth/token") in operations(spec)


def test_paginated_lists_take_limit_and_cursor_and_link_the_next(spec: dict[str, Any]) -> None:
    paginated = [r for r in all_routes() if r.paginated]
    assert {r.path for r in paginated} >= {"/v1/usage", "/v1/applications", "/v1/grants", "/v1/products",
                                           "/v1/requesters", "/v1/products/{product_id}/versions",
                                           "/v1/datasets/{dataset}/snapshots", "/v1/audit/entries", "/v1/queries",
                                           "/v1/invoices"}
    ops = operations(spec)
    for r in paginated:
        op = ops[(r.method, openapi_path(r.path))]
        assert {"limit", "cursor"} <= {p["name"] for p in op["parameters"]}, r.path
        assert "Link" in op["responses"]["200"]["headers"], r.path
        answer = spec["components"]["schemas"][r.answer or ""]
        assert {"items", "next"} <= set(answer["required"]), r.path


def _validate(spec: dict[str, Any], name: str, value: Any) -> None:
    validator(spec, {"$ref": f"#/components/schemas/{name}"}).validate(value)


def test_served_document_and_live_answers_match(gateway: Gateway, spec: dict[str, Any]) -> None:
    served = call("GET", gateway.base + "/openapi.json")
    assert served.status == 200 and served.json == json.loads(json.dumps(spec))
    period = gateway.api("GET", "/v1/budget", "demo-bank").json["period"]
    query = {"dataset": "enterprises", "sql": "SELECT industry, COUNT(*) AS n FROM enterprises GROUP BY industry",
             "epsilon": 0.1}
    answer = gateway.api("POST", "/v1/queries", "demo-bank", query)
    live = {
        "QueryAnswer": answer,
        "Preview": gateway.api("POST", "/v1/queries/preview", "demo-bank", query),
        "Release": gateway.api("GET", f"/v1/queries/{answer.json['query_id']}", "demo-bank"),
        "Usage": gateway.api("GET", "/v1/usage", "demo-bank"),
        "ReleaseList": gateway.api("GET", "/v1/queries", "demo-bank"),
        "InvoiceList": gateway.api("GET", "/v1/invoices", "demo-bank"),
        "AuditEntryList": gateway.api("GET", "/v1/audit/entries?limit=50", "demo-bureau"),
        "ProductList": gateway.api("GET", "/v1/products", "demo-bank"),
        "Product": gateway.api("GET", "/v1/products/income-by-township", "demo-bank"),
        "ProductVersionList": gateway.api("GET", "/v1/products/income-by-township/versions", "demo-bureau"),
        "DatasetList": gateway.api("GET", "/v1/datasets", "demo-bank"),
        "Dataset": gateway.api("GET", "/v1/datasets/vehicles", "demo-bank"),
        "Budget": gateway.api("GET", "/v1/budget", "demo-bank"),
        "Invoice": gateway.api("GET", f"/v1/invoices/{period}", "demo-bank"),
        "RevenueStatements": gateway.api("GET", f"/v1/revenue/{period}", "demo-bureau"),
        "GrantList": gateway.api("GET", "/v1/grants", "demo-bank"),
        "ApplicationList": gateway.api("GET", "/v1/applications", "demo-bureau"),
        "OrgList": gateway.api("GET", "/v1/requesters", "demo-bureau"),
        "PolicyCurrent": gateway.api("GET", "/v1/datasets/residents/policy", "demo-bureau"),
        "SnapshotList": gateway.api("GET", "/v1/datasets/residents/snapshots", "demo-bureau"),
        "AuditVerdict": gateway.api("GET", "/v1/audit/verify", "demo-bureau"),
        "JWKS": call("GET", gateway.base + "/.well-known/jwks.json"),
        "Problem": gateway.api("GET", "/v1/grants/none", "demo-bank"),
    }
    for name, reply in live.items():
        assert reply.status < 500, (name, reply.body[:300])
        _validate(spec, name, json.loads(reply.body))
    located = gateway.api("POST", "/v1/queries/preview", "demo-bank", {**query, "epsilon": True})
    assert located.status == 400 and located.json["errors"][0]["pointer"] == "/epsilon"
    _validate(spec, "Problem", located.json)


def test_docs_render_the_same_document(gateway: Gateway, spec: dict[str, Any]) -> None:
    page = call("GET", gateway.base + "/docs")
    assert page.status == 200 and (page.header("content-type") or "").startswith("text/html")
    text = page.body.decode()
    for op in operations(spec).values():
        assert f'id="{op["operationId"]}"' in text
    for name in spec["components"]["schemas"]:
        assert f'id="schema-{name}"' in text
    assert [tag for tag in ("<script", "<link", "<img", "<iframe", " src=") if tag in text] == []  # no asset
