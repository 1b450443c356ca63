"""The JSON plan form: the same query as the SQL subset, as a strict JSON object.

    {"dataset": "residents",
     "select": [{"column": "township"},
                {"aggregate": "count", "as": "n"},
                {"aggregate": "mean", "column": "income", "as": "mean_income"},
                {"aggregate": "quantile", "column": "income", "q": 0.9}],
     "group_by": ["township"],
     "where": {"and": [{"column": "age", "op": ">=", "value": 18},
                       {"column": "sex", "in": ["F"]},
                       {"not": {"column": "age", "between": [60, 70]}}]},
     "order_by": [{"output": "n", "desc": true}],
     "limit": 10}

Unknown keys are refused (R-AU-08); every error names the path of the offending member.
It passes the same limits as SQL and yields the same Plan, so it goes through the same checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NoReturn

from gateway.core.plan import (
    COMPARE_OPS,
    MAX_AGGREGATES,
    MAX_DEPTH,
    MAX_GROUP_BY,
    MAX_IN_VALUES,
    MAX_STRING_CHARS,
    Aggregate,
    And,
    Between,
    Compare,
    InList,
    Not,
    Or,
    OrderKey,
    Output,
    Plan,
    Predicate,
    Scalar,
)
from gateway.errors import InvalidQuery

_FUNCS = {"count": "count", "sum": "sum", "mean": "mean", "avg": "mean", "median": "median",
          "quantile": "quantile"}


def parse_json_plan(obj: Mapping[str, Any], *, epsilon: Decimal, delta: Decimal = Decimal(0),
                    dataset: str | None = None) -> Plan:
    """A JSON plan -> Plan, or InvalidQuery naming the offending member."""
    _keys(obj, "plan", required={"select"}, optional={"dataset", "group_by", "where", "order_by", "limit"})
    name = obj.get("dataset", dataset)
    if not isinstance(name, str) or not name:
        _fail("plan.dataset", "name the dataset as a string")
    if dataset is not None and name != dataset:
        _fail("plan.dataset", f"the plan reads {name!r} but the request names {dataset!r}")
    group_by = _group_by(obj.get("group_by", []))
    select = _select(obj["select"], group_by)
    aggregates = tuple(o.aggregate for o in select if o.aggregate is not None)
    if not aggregates:
        _fail("plan.select", "select at least one aggregate")
    if len(aggregates) > MAX_AGGREGATES:
        _fail("plan.select", f"at most {MAX_AGGREGATES} aggregates per query")
    where = _predicate(obj["where"], "plan.where", 1) if obj.get("where") is not None else None
    return Plan(dataset=name, select=select, group_by=group_by, aggregates=aggregates, where=where,
                order_by=_order_by(obj.get("order_by", []), select), limit=_limit(obj.get("limit")),
                epsilon=Decimal(epsilon), delta=Decimal(delta))


def _fail(path: str, message: str) -> NoReturn:
    raise InvalidQuery(f"{path}: {message}.")


def _keys(obj: Any, path: str, *, required: set[str], optional: frozenset[str] | set[str] = frozenset()) -> None:
    if not isinstance(obj, Mapping):
        _fail(path, "expected an object")
    for key in obj:
        if key not in required | optional:
            _fail(f"{path}.{key}", "unknown member")
    for key in sorted(required - set(obj)):
        _fail(f"{path}.{key}", "missing")


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        _fail(path, "expected a list")
    return value


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_STRING_CHARS:
        _fail(path, "expected a column name")
    return value


def _scalar(value: Any, path: str) -> Scalar:
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            _fail(path, "expected a finite number")
        return int(value) if value.is_integer() and abs(value) < 2**63 else value
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            _fail(path, f"strings are at most {MAX_STRING_CHARS} characters")
        return value
    _fail(path, "expected a number, a string or a boolean")


def _group_by(value: Any) -> tuple[str, ...]:
    keys = [_name(v, f"plan.group_by[{i}]") for i, v in enumerate(_list(value, "plan.group_by"))]
    if len(set(keys)) > MAX_GROUP_BY:
        _fail("plan.group_by", f"at most {MAX_GROUP_BY} columns")
    return tuple(dict.fromkeys(keys))


def _select(value: Any, group_by: tuple[str, ...]) -> tuple[Output, ...]:
    outputs: list[Output] = []
    for i, item in enumerate(_list(value, "plan.select")):
        path = f"plan.select[{i}]"
        output = _aggregate_output(item, path) if isinstance(item, Mapping) and "aggregate" in item \
            else _key_output(item, path, group_by)
        if output.name in {o.name for o in outputs}:
            _fail(path, f"two outputs are named {output.name!r}; rename one with 'as'")
        outputs.append(output)
    return tuple(outputs)


def _key_output(item: Any, path: str, group_by: tuple[str, ...]) -> Output:
    _keys(item, path, required={"column"}, optional={"as"})
    column = _name(item["column"], f"{path}.column")
    if column not in group_by:
        _fail(path, f"column {column!r} must be in group_by or inside an aggregate")
    return Output(name=_name(item.get("as", column), f"{path}.as"), key=column)


def _aggregate_output(item: Mapping[str, Any], path: str) -> Output:
    func = _FUNCS.get(str(item["aggregate"]).lower())
    if func is None:
        _fail(f"{path}.aggregate", "one of count, sum, mean, median, quantile")
    needs = {"aggregate"} | ({"column"} if func != "count" else set()) | ({"q"} if func == "quantile" else set())
    _keys(item, path, required=needs, optional={"as", "column"})
    column = _name(item["column"], f"{path}.column") if "column" in item else None
    q = None
    if func == "quantile":
        q = item["q"]
        if isinstance(q, bool) or not isinstance(q, int | float) or not 0 < q < 1:
            _fail(f"{path}.q", "a number with 0 < q < 1")
        q = float(q)
    aggregate = Aggregate(func, column, q)  # type: ignore[arg-type]
    return Output(name=_name(item.get("as", aggregate.label), f"{path}.as"), aggregate=aggregate)


def _predicate(obj: Any, path: str, depth: int) -> Predicate:
    if depth > MAX_DEPTH:
        _fail(path, f"conditions are nested deeper than {MAX_DEPTH} levels")
    if isinstance(obj, Mapping) and ("and" in obj or "or" in obj):
        kind = "and" if "and" in obj else "or"
        _keys(obj, path, required={kind})
        items = _list(obj[kind], f"{path}.{kind}")
        if not items:
            _fail(f"{path}.{kind}", "expected at least one condition")
        terms = tuple(_predicate(t, f"{path}.{kind}[{i}]", depth + 1) for i, t in enumerate(items))
        return And(terms) if kind == "and" else Or(terms)
    if isinstance(obj, Mapping) and "column" not in obj and "not" in obj:
        _keys(obj, path, required={"not"})
        return Not(_predicate(obj["not"], f"{path}.not", depth + 1))
    return _condition(obj, path)


def _condition(obj: Any, path: str) -> Predicate:
    if isinstance(obj, Mapping) and "in" in obj:
        _keys(obj, path, required={"column", "in"}, optional={"not"})
        values = _list(obj["in"], f"{path}.in")
        if not 1 <= len(values) <= MAX_IN_VALUES:
            _fail(f"{path}.in", f"between 1 and {MAX_IN_VALUES} values")
        return InList(_name(obj["column"], f"{path}.column"),
                      tuple(_scalar(v, f"{path}.in[{i}]") for i, v in enumerate(values)), _flag(obj, path))
    if isinstance(obj, Mapping) and "between" in obj:
        _keys(obj, path, required={"column", "between"}, optional={"not"})
        bounds = _list(obj["between"], f"{path}.between")
        if len(bounds) != 2:
            _fail(f"{path}.between", "expected [low, high]")
        return Between(_name(obj["column"], f"{path}.column"), _scalar(bounds[0], f"{path}.between[0]"),
                       _scalar(bounds[1], f"{path}.between[1]"), _flag(obj, path))
    _keys(obj, path, required={"column", "op", "value"})
    if obj["op"] not in COMPARE_OPS:
        _fail(f"{path}.op", "one of " + ", ".join(COMPARE_OPS))
    return Compare(_name(obj["column"], f"{path}.column"), obj["op"], _scalar(obj["value"], f"{path}.value"))


def _flag(obj: Mapping[str, Any], path: str) -> bool:
    return _bool(obj.get("not", False), f"{path}.not")


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        _fail(path, "expected true or false")
    return value


def _order_by(value: Any, outputs: tuple[Output, ...]) -> tuple[OrderKey, ...]:
    keys = []
    names = {o.name for o in outputs}
    for i, item in enumerate(_list(value, "plan.order_by")):
        path = f"plan.order_by[{i}]"
        _keys(item, path, required={"output"}, optional={"desc"})
        if item["output"] not in names:
            _fail(f"{path}.output", "name a selected output")
        keys.append(OrderKey(item["output"], _bool(item.get("desc", False), f"{path}.desc")))
    return tuple(keys)


def _limit(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        _fail("plan.limit", "a whole number of rows")
    return value
