"""Data products: typed parameters, a SQL template parsed once, values bound into plan slots.

A merchant writes a product as SQL with named parameters (`WHERE age BETWEEN :min_age AND
:max_age`). Each `:name` token is swapped for a slot marker literal before the one SQL parser
runs, so the template becomes a plan whose literals are slots. At invocation a value is
checked against its parameter's type and declared range or allowed values, then put into the
plan's slots as a value: the requester's input never becomes SQL text (R-IN-05).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal, cast

from sqlglot.errors import TokenError
from sqlglot.tokens import Tokenizer, TokenType

from gateway.core.checks import check_plan
from gateway.core.literals import coerce
from gateway.core.plan import MAX_STRING_CHARS, And, Between, Compare, InList, Not, Or, Plan, Predicate, Scalar
from gateway.core.policy import DatasetPolicy
from gateway.core.sql import parse_sql
from gateway.errors import InvalidQuery, InvalidRequest, PolicyViolation

ParamType = Literal["integer", "number", "string", "boolean"]
PARAM_TYPES: tuple[str, ...] = ("integer", "number", "string", "boolean")
PARAM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_PARAMETERS = 16
MAX_ALLOWED = 1000
SLOT_PREFIX = "\x00param:"  # NUL never appears in a policy category, so a slot cannot be mistaken
_COLUMN_KINDS = {"integer": ("integer",), "number": ("float",), "string": ("string",), "boolean": ("boolean",)}
_SPEC_FIELDS = {"name", "type", "description", "minimum", "maximum", "allowed", "default", "example"}


@dataclass(frozen=True)
class Parameter:
    name: str
    type: ParamType
    description: str = ""
    minimum: int | float | None = None
    maximum: int | float | None = None
    allowed: tuple[Scalar, ...] | None = None
    default: Scalar | None = None
    example: Scalar | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "description": self.description}
        for key in ("minimum", "maximum", "default", "example"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.allowed is not None:
            out["allowed"] = list(self.allowed)
        return out

    def check(self, value: Any) -> Scalar:
        """The value if it has this parameter's type and lies in its range or allowed set."""
        if not _has_type(value, self.type):
            raise InvalidRequest(f"parameter {self.name!r} must be {_article(self.type)}")
        if self.type == "string" and len(value) > MAX_STRING_CHARS:
            raise InvalidRequest(f"parameter {self.name!r} is longer than {MAX_STRING_CHARS} characters")
        if self.minimum is not None and value < self.minimum:
            raise InvalidRequest(f"parameter {self.name!r} must be at least {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise InvalidRequest(f"parameter {self.name!r} must be at most {self.maximum}")
        if self.allowed is not None and not any(_same(value, a) for a in self.allowed):
            raise InvalidRequest(f"parameter {self.name!r} must be one of the allowed values")
        return cast("str | int | float | bool", value)


def _has_type(value: Any, kind: str) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return kind == "number" or isinstance(value, int)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


# ---------------------------------------------------------------- parameter declarations


def parse_parameters(raw: Any) -> tuple[Parameter, ...]:
    """Parameter declarations from a request body, or InvalidRequest naming the first problem."""
    if not isinstance(raw, list) or len(raw) > MAX_PARAMETERS:
        raise InvalidRequest(f"parameters must be a list of at most {MAX_PARAMETERS} objects")
    params = tuple(_parameter(item, f"parameters[{i}]") for i, item in enumerate(raw))
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise InvalidRequest("parameter names must be unique")
    return params


def _parameter(item: Any, where: str) -> Parameter:
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where} must be an object")
    unknown = sorted(set(item) - _SPEC_FIELDS)
    if unknown:
        raise InvalidRequest(f"{where}: unknown field(s) {', '.join(unknown)}")
    name, kind = item.get("name"), item.get("type")
    if not isinstance(name, str) or not PARAM_NAME.match(name):
        raise InvalidRequest(f"{where}.name must match {PARAM_NAME.pattern}")
    if kind not in PARAM_TYPES:
        raise InvalidRequest(f"{where}.type must be one of {', '.join(PARAM_TYPES)}")
    description = item.get("description", "")
    if not isinstance(description, str) or len(description) > 500:
        raise InvalidRequest(f"{where}.description must be text of at most 500 characters")
    shape = Parameter(name, kind, description)
    bounds = {k: _bound(item.get(k), kind, f"{where}.{k}") for k in ("minimum", "maximum")}
    if None not in bounds.values() and bounds["minimum"] > bounds["maximum"]:  # type: ignore[operator]
        raise InvalidRequest(f"{where}: minimum is above maximum")
    allowed = _allowed(item.get("allowed"), shape, where)
    param = replace(shape, minimum=bounds["minimum"], maximum=bounds["maximum"], allowed=allowed)
    for key in ("default", "example"):
        if item.get(key) is not None:
            try:
                param.check(item[key])
            except InvalidRequest as exc:
                raise InvalidRequest(f"{where}.{key}: {exc.detail}") from None
    return replace(param, default=item.get("default"), example=item.get("example"))


def _bound(value: Any, kind: str, where: str) -> int | float | None:
    if value is None:
        return None
    if kind not in ("integer", "number") or not _has_type(value, kind):
        raise InvalidRequest(f"{where} is only for numeric parameters and must be {_article(kind)}")
    return cast("int | float", value)


def _allowed(value: Any, shape: Parameter, where: str) -> tuple[Scalar, ...] | None:
    if value is None:
        return (True, False) if shape.type == "boolean" else None
    if not isinstance(value, list) or not 0 < len(value) <= MAX_ALLOWED:
        raise InvalidRequest(f"{where}.allowed must be a list of 1 to {MAX_ALLOWED} values")
    for v in value:
        if not _has_type(v, shape.type):
            raise InvalidRequest(f"{where}.allowed holds {v!r}, which is not {_article(shape.type)}")
    return tuple(value)


# ---------------------------------------------------------------- templates


@dataclass(frozen=True)
class Template:
    """A parsed product: a plan whose literals may be slots, and its parameters."""

    plan: Plan
    parameters: tuple[Parameter, ...]

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    def example_values(self) -> dict[str, Scalar]:
        return {p.name: p.example for p in self.parameters if p.example is not None}


def slot(name: str) -> str:
    return SLOT_PREFIX + name


def mark_slots(sql: str) -> tuple[str, tuple[str, ...]]:
    """The SQL with each `:name` token replaced by a slot literal, and the names in order.

    Tokens, not text, are matched, so a `:name` inside a quoted string stays text.
    """
    try:
        tokens = Tokenizer().tokenize(sql)
    except TokenError:
        raise InvalidQuery("Syntax error: a quoted string or name is not closed.") from None
    pieces, names, cursor = [], [], 0
    for colon, word in itertools.pairwise(tokens):
        if colon.token_type != TokenType.COLON or word.start != colon.end + 1:
            continue
        if not PARAM_NAME.match(word.text):
            raise InvalidQuery(f"Parameter names match {PARAM_NAME.pattern}; {word.text!r} does not.")
        pieces += [sql[cursor:colon.start], f"'{slot(word.text)}'"]
        names.append(word.text)
        cursor = word.end + 1
    pieces.append(sql[cursor:])
    return "".join(pieces), tuple(names)


def parse_template(sql: str, parameters: Sequence[Parameter], *, epsilon: Decimal, delta: Decimal,
                   dataset: str) -> Template:
    """The product's SQL parsed once into a plan with slots; every parameter used, none unknown."""
    marked, used = mark_slots(sql)
    declared = {p.name for p in parameters}
    undeclared = sorted(set(used) - declared)
    if undeclared:
        raise InvalidRequest(f"the SQL uses undeclared parameter(s): {', '.join(undeclared)}")
    unused = sorted(declared - set(used))
    if unused:
        raise InvalidRequest(f"declared parameter(s) not used in the SQL: {', '.join(unused)}")
    plan = parse_sql(marked, epsilon=epsilon, delta=delta, dataset=dataset)
    if set(slot_columns(plan.where)) != declared:
        raise InvalidRequest("parameters may only stand for literal values in WHERE")
    return Template(plan, tuple(parameters))


def draft_template(sql: str, parameters: Sequence[Parameter], *, epsilon: Decimal, delta: Decimal,
                   policy: DatasetPolicy) -> Template:
    """Parse a product once and hold it against the policy; parameters come back completed.

    A string parameter without `allowed` takes the public categories of the column it is
    compared with; every parameter gets an `example` that binds and passes the policy.
    """
    parsed = parse_template(sql, parameters, epsilon=epsilon, delta=delta, dataset=policy.dataset)
    columns = slot_columns(parsed.plan.where)
    template = Template(parsed.plan, tuple(_complete(p, columns[p.name], policy) for p in parameters))
    check_plan(bind(template, template.example_values()), policy)
    return template


def _complete(param: Parameter, columns: set[str], policy: DatasetPolicy) -> Parameter:
    reasons: list[str] = []
    for name in sorted(columns):
        col = policy.column(name)
        if col is None or not col.referenceable:
            continue  # check_plan reports the unknown column
        if col.type not in _COLUMN_KINDS[param.type] and not (param.type == "integer" and col.type == "float"):
            reasons.append(f"parameter {param.name!r} ({param.type}) is compared with {col.type} column {name!r}")
            continue
        if param.allowed is None and param.type == "string":
            if col.categories is None:
                reasons.append(f"parameter {param.name!r} needs allowed values: {name!r} has no public categories")
                continue
            param = replace(param, allowed=tuple(col.categories))
        for value in param.allowed or ():
            if col.categories is not None and coerce(value, col.type) not in col.categories:
                reasons.append(f"parameter {param.name!r} allows {value!r}, not a category of {name!r}")
    if param.type in ("integer", "number") and param.allowed is None and None in (param.minimum, param.maximum):
        reasons.append(f"numeric parameter {param.name!r} needs minimum and maximum, or allowed values")
    if reasons:
        raise PolicyViolation(reasons)
    example = param.example if param.example is not None else param.default
    if example is None:
        example = param.allowed[0] if param.allowed else param.minimum
    return replace(param, example=example)


def slot_columns(pred: Predicate | None) -> dict[str, set[str]]:
    """parameter name -> the columns its slots are compared with."""
    out: dict[str, set[str]] = {}
    if pred is None:
        return out
    if isinstance(pred, And | Or):
        for term in pred.terms:
            for name, cols in slot_columns(term).items():
                out.setdefault(name, set()).update(cols)
        return out
    if isinstance(pred, Not):
        return slot_columns(pred.term)
    values = (pred.value,) if isinstance(pred, Compare) else pred.values if isinstance(pred, InList) \
        else (pred.low, pred.high)
    for value in values:
        if isinstance(value, str) and value.startswith(SLOT_PREFIX):
            out.setdefault(value[len(SLOT_PREFIX):], set()).add(pred.column)
    return out


# ---------------------------------------------------------------- binding


def bind_values(template: Template, values: Mapping[str, Any]) -> dict[str, Scalar]:
    """Checked values for every parameter: given, else default; unknown names are refused."""
    unknown = sorted(set(values) - {p.name for p in template.parameters})
    if unknown:
        raise InvalidRequest(f"unknown parameter(s): {', '.join(unknown)}")
    out: dict[str, Scalar] = {}
    for param in template.parameters:
        if param.name in values:
            out[param.name] = param.check(values[param.name])
        elif param.default is not None:
            out[param.name] = param.default
        else:
            raise InvalidRequest(f"parameter {param.name!r} is required")
    return out


def bind(template: Template, values: Mapping[str, Any]) -> Plan:
    """The plan with every slot holding its checked value (never text put into SQL)."""
    checked = bind_values(template, values)
    where = _bind_predicate(template.plan.where, checked) if template.plan.where is not None else None
    return replace(template.plan, where=where)


def _bind_predicate(pred: Predicate, values: Mapping[str, Scalar]) -> Predicate:
    if isinstance(pred, And | Or):
        return type(pred)(tuple(_bind_predicate(t, values) for t in pred.terms))
    if isinstance(pred, Not):
        return Not(_bind_predicate(pred.term, values))
    if isinstance(pred, Compare):
        return Compare(pred.column, pred.op, _bind_value(pred.value, values))
    if isinstance(pred, InList):
        return InList(pred.column, tuple(_bind_value(v, values) for v in pred.values), pred.negated)
    return Between(pred.column, _bind_value(pred.low, values), _bind_value(pred.high, values), pred.negated)


def _bind_value(value: Scalar, values: Mapping[str, Scalar]) -> Scalar:
    if isinstance(value, str) and value.startswith(SLOT_PREFIX):
        return values[value[len(SLOT_PREFIX):]]
    return value
