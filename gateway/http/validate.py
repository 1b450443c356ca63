"""Request bodies checked against the very JSON Schemas the OpenAPI document serves (one definition,
two uses); a refusal is a 400 invalid_request naming the field's path and listing every problem."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from gateway.errors import InvalidRequest
from gateway.http.openapi_schemas import SCHEMAS, Schema

_VALID: set[tuple[str, str]] = set()
_REMEMBER, _REMEMBER_CHARS = 4096, 4096  # valid bodies remembered, and the longest remembered
MAX_LISTED = 20  # problems listed in one answer: enough to fix a body, never an amplifier
_TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
               "object": "an object", "array": "a list", "null": "null"}


@functools.cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator for `components.schemas[name]`, its `$ref`s resolved within the same components."""
    if name not in SCHEMAS:
        raise KeyError(f"no schema named {name!r}")
    # The schema itself at the root (its inner `$ref`s resolve in the same components): no
    # reference to follow at the top of every validation (~20% of validating a query body).
    root = {**SCHEMAS[name], "components": {"schemas": SCHEMAS}}
    return jsonschema.Draft202012Validator(root)


def validate_body(name: str, value: Any) -> None:
    """Raise a located 400 unless `value` fits the schema `name`.

    Bodies found valid are remembered (by schema and canonical JSON text, which tells apart every
    JSON value: 1, 1.0 and true, key order aside): a client asking the same question again, as
    cached calls do, is not validated again (~0.6 ms of a cached call's 3 ms, issue 18)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    key = (name, text) if len(text) <= _REMEMBER_CHARS else None
    if key is not None and key in _VALID:
        return
    errors = sorted(_validator(name).iter_errors(value), key=_order)
    if not errors:
        if key is not None:
            if len(_VALID) >= _REMEMBER:
                _VALID.clear()
            _VALID.add(key)
        return
    listed = [{"pointer": _pointer(e.absolute_path), "detail": _wording(e)} for e in errors[:MAX_LISTED]]
    first = errors[0]
    where = _where(first.absolute_path)
    raise InvalidRequest(f"{where}: {_wording(first)}" if where else _wording(first), extra={"errors": listed})


def first_problem(schema: Schema, value: Any) -> str | None:
    """The first way `value` misses a small self-contained schema (a parameter's), or None."""
    error = next(iter(jsonschema.Draft202012Validator(schema).iter_errors(value)), None)
    return None if error is None else _wording(error)


def _order(error: ValidationError) -> tuple[int, list[str]]:
    return len(error.absolute_path), [str(p) for p in error.absolute_path]


def _pointer(path: Iterable[Any]) -> str:
    """RFC 6901: `/plan/aggregates/0`."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _where(path: Iterable[Any]) -> str:
    """A field path a person reads: `params.min_age`, `lines[2].amount`; "" for the body itself."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _kinds(expected: Any) -> str:
    kinds = expected if isinstance(expected, list) else [expected]
    return " or ".join(_TYPE_WORDS.get(k, str(k)) for k in kinds)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _wording(error: ValidationError) -> str:
    """jsonschema's message, reworded for the common cases (and never echoing a long value)."""
    kind, schema = error.validator, error.schema
    expected: Any = error.validator_value
    instance: Any = error.instance
    if kind == "required":
        present = instance if isinstance(instance, dict) else {}
        return "missing field(s): " + ", ".join(f for f in expected if f not in present)
    if kind == "additionalProperties" and isinstance(schema, dict):
        allowed = set(schema.get("properties", {}))
        extra = sorted(k for k in instance if k not in allowed) if isinstance(instance, dict) else []
        return "unknown field(s): " + ", ".join(extra)
    if kind == "type":
        return f"must be {_kinds(expected)}"
    if kind == "enum":
        return "must be one of " + ", ".join(_short(v) for v in expected)
    if kind == "const":
        return f"must be {_short(expected)}"
    if kind == "pattern":
        return f"does not match the pattern {expected}"
    if kind in ("minLength", "maxLength"):
        return f"must be at {'least' if kind == 'minLength' else 'most'} {expected} characters long"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "over",
                 "exclusiveMaximum": "under"}
        return f"must be {words[str(kind)]} {expected}"
    if kind in ("minItems", "maxItems"):
        return f"must hold at {'least' if kind == 'minItems' else 'most'} {expected} item(s)"
    return error.message if len(error.message) <= 200 else error.message[:197] + "..."
