"""The OpenAPI document and the route table agree, and real answers match the documented schemas."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from gateway.http.app import all_routes
from gateway.http.openapi import doc_of, document, openapi_path, path_params
from tests.support import Gateway, call

METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return document(all_routes())


def operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m.upper(), p): op for p, item in spec["paths"].items() for m, op in item.items() if m in METHODS}


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
        assert ("security" in op) == bool(r.roles), r.path
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(path_params(r.path)), r.path


def test_every_route_carries_schema_data() -> None:
    """A route documented only by its table entry would describe no body or answer."""
    docs = {r.name: doc_of(r) for r in all_routes()}
    bare = [name for name, d in docs.items() if d.response is None and d.response_type == "application/json"]
    assert bare == []


def test_refs_resolve_and_schemas_are_valid_json_schema(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    for schema in schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    refs = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(spec)
    assert refs and all(r.startswith("#/components/schemas/") and r.rsplit("/", 1)[1] in schemas for r in refs)
    assert spec["openapi"] == "3.1.0"


def _validate(spec: dict[str, Any], name: str, value: Any) -> None:
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    jsonschema.Draft202012Validator(schema).validate(value)


def test_served_document_and_live_answers_match(gateway: Gateway, spec: dict[str, Any]) -> None:
    served = call("GET", gateway.base + "/openapi.json")
    assert served.status == 200 and served.json["paths"].keys() == spec["paths"].keys()
    period = gateway.api("GET", "/v1/budget", "demo-bank").json["period"]
    live = {
        "ProductList": gateway.api("GET", "/v1/products", "demo-bank"),
        "DatasetList": gateway.api("GET", "/v1/datasets", "demo-bank"),
        "Budget": gateway.api("GET", "/v1/budget", "demo-bank"),
        "Invoice": gateway.api("GET", f"/v1/invoices/{period}", "demo-bank"),
        "RevenueStatements": gateway.api("GET", f"/v1/revenue/{period}", "demo-bureau"),
        "GrantList": gateway.api("GET", "/v1/grants", "demo-bank"),
        "Problem": gateway.api("GET", "/v1/grants/none", "demo-bank"),
    }
    for name, reply in live.items():
        _validate(spec, name, json.loads(reply.body))
