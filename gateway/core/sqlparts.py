"""Pieces of the SQL walk: positions of nodes, literals, column names and WHERE predicates."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import NoReturn

from sqlglot import exp

from gateway.core.plan import (
    MAX_IN_VALUES,
    MAX_STRING_CHARS,
    And,
    Between,
    Compare,
    InList,
    Not,
    Or,
    Predicate,
    Scalar,
)
from gateway.errors import InvalidQuery

_COMPARISONS: dict[type[exp.Expression], str] = {
    exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">=",
}
_FLIPPED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_MAX_INTEGER = 2**63 - 1


class Locator:
    """Turns offsets in the SQL text into 1-based (line, column) for error messages."""

    def __init__(self, sql: str) -> None:
        self.sql = sql

    def position(self, offset: int) -> tuple[int, int]:
        line = self.sql.count("\n", 0, offset) + 1
        return line, offset - (self.sql.rfind("\n", 0, offset) + 1) + 1

    def error(self, message: str, offset: int | None) -> InvalidQuery:
        if offset is None:
            return InvalidQuery(message)
        line, column = self.position(offset)
        return InvalidQuery(message, line=line, column=column)

    def offset_of(self, node: exp.Expression) -> int | None:
        """The earliest token offset inside a node (sqlglot keeps them on leaves); for nodes
        without any (DISTINCT, NULL), where their keyword is written."""
        starts = [n.meta["start"] for n in node.walk() if "start" in n.meta]
        return min(starts) if starts else self.keyword(node.key)

    def keyword(self, word: str) -> int | None:
        """Offset of the first `word` outside quotes, as a whole word, in any letter case."""
        match = re.search(rf"\b{re.escape(word)}\b", self._unquoted(), flags=re.IGNORECASE)
        return match.start() if match else None

    def unclosed_quote(self) -> int | None:
        quote, opened = "", None
        for offset, char in enumerate(self.sql):
            if quote:
                quote = "" if char == quote else quote
            elif char in "'\"`":
                quote, opened = char, offset
        return opened if quote else None

    def _unquoted(self) -> str:
        """The text with quoted strings and names blanked, offsets unchanged."""
        out, quote = [], ""
        for char in self.sql:
            if quote:
                quote = "" if char == quote else quote
                out.append(" ")
            else:
                quote = char if char in "'\"`" else ""
                out.append(" " if quote else char)
        return "".join(out)


def fail(message: str, node: exp.Expression, at: Locator) -> NoReturn:
    raise at.error(message, at.offset_of(node))


def read_column(node: exp.Expression, at: Locator, tables: set[str], why: str) -> str:
    """A plain column name (optionally qualified by the dataset or its alias)."""
    if not isinstance(node, exp.Column) or not isinstance(node.this, exp.Identifier):
        fail(f"{why}; expressions are not supported." if why else "Expected a column name.", node, at)
    if node.args.get("db") or node.args.get("catalog"):
        fail("Name columns without a schema or catalog.", node, at)
    if node.table and _name(node.args["table"]) not in tables:
        fail(f"Unknown table {node.table!r}; the query reads one dataset.", node, at)
    return _name(node.this)


def _name(node: exp.Expression) -> str:
    return node.name if isinstance(node, exp.Identifier) and node.quoted else node.name.lower()


def read_scalar(node: exp.Expression, at: Locator) -> Scalar:
    """A literal: quoted string, number (integral numbers become int), TRUE or FALSE."""
    if isinstance(node, exp.Paren):
        return read_scalar(node.this, at)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        return -_number(node.this, at)
    if isinstance(node, exp.Literal):
        if node.is_string:
            if len(node.this) > MAX_STRING_CHARS:
                fail(f"String literals are at most {MAX_STRING_CHARS} characters.", node, at)
            return str(node.this)
        return _number(node, at)
    if isinstance(node, exp.Null):
        fail("NULL is not supported in comparisons.", node, at)
    fail("Expected a literal value (a number, a quoted string, TRUE or FALSE).", node, at)


def _number(node: exp.Literal, at: Locator) -> int | float:
    try:
        value = Decimal(node.this)
    except InvalidOperation:
        fail(f"{node.this!r} is not a number.", node, at)
    if not value.is_finite():
        fail(f"{node.this!r} is not a finite number.", node, at)
    if value == value.to_integral_value() and abs(value) <= _MAX_INTEGER:
        return int(value)
    as_float = float(value)
    if as_float in (float("inf"), float("-inf")):
        fail(f"{node.this!r} is too large.", node, at)
    return as_float


def read_predicate(node: exp.Expression, at: Locator, tables: set[str]) -> Predicate:
    """A WHERE condition: comparisons, IN, BETWEEN, AND/OR/NOT, on columns and literals."""
    if isinstance(node, exp.Paren):
        return read_predicate(node.this, at, tables)
    if isinstance(node, exp.And | exp.Or):
        terms = tuple(read_predicate(t, at, tables) for t in _chain(node))
        return And(terms) if isinstance(node, exp.And) else Or(terms)
    if isinstance(node, exp.Not):
        inner = read_predicate(node.this, at, tables)
        if isinstance(inner, InList | Between) and not inner.negated:
            return type(inner)(**{**inner.__dict__, "negated": True})
        return Not(inner)
    if type(node) in _COMPARISONS:
        return _comparison(node, at, tables)
    if isinstance(node, exp.In):
        return _in_list(node, at, tables)
    if isinstance(node, exp.Between):
        column = read_column(node.this, at, tables, "BETWEEN applies to a column")
        return Between(column, read_scalar(node.args["low"], at), read_scalar(node.args["high"], at))
    if isinstance(node, exp.Column):
        return Compare(read_column(node, at, tables, ""), "=", True)  # WHERE insured
    fail(_unsupported_condition(node), node, at)


def _chain(node: exp.And | exp.Or) -> list[exp.Expression]:
    """Operands of a chain of the same operator, iteratively (chains can be long)."""
    out: list[exp.Expression] = []
    stack: list[exp.Expression] = [node]
    while stack:
        cur = stack.pop()
        if type(cur) is type(node):
            stack.extend([cur.expression, cur.this])
        else:
            out.append(cur)
    return out


def _comparison(node: exp.Expression, at: Locator, tables: set[str]) -> Compare:
    op = _COMPARISONS[type(node)]
    left, right = node.this, node.expression
    if isinstance(right, exp.Column) and not isinstance(left, exp.Column):
        left, right, op = right, left, _FLIPPED[op]
    if isinstance(right, exp.Column):
        fail("Compare a column with a literal value, not with another column.", node, at)
    column = read_column(left, at, tables, "Comparisons apply to a column")
    return Compare(column, op, read_scalar(right, at))  # type: ignore[arg-type]


def _in_list(node: exp.In, at: Locator, tables: set[str]) -> InList:
    if node.args.get("query") is not None:
        fail("Subqueries are not supported in IN; list the values.", node.args["query"], at)
    extra = [k for k, v in node.args.items() if v and k not in ("this", "expressions")]
    if extra or not node.expressions:
        fail("IN takes a list of literal values.", node, at)
    if len(node.expressions) > MAX_IN_VALUES:
        fail(f"IN lists hold at most {MAX_IN_VALUES} values.", node.expressions[MAX_IN_VALUES], at)
    column = read_column(node.this, at, tables, "IN applies to a column")
    return InList(column, tuple(read_scalar(v, at) for v in node.expressions))


def _unsupported_condition(node: exp.Expression) -> str:
    if isinstance(node, exp.Is):
        return "IS [NOT] NULL is not supported in WHERE."
    if isinstance(node, exp.Like | exp.ILike):
        return "LIKE is not supported; compare with =, IN or BETWEEN."
    if isinstance(node, exp.Subquery | exp.Exists | exp.Select):
        return "Subqueries are not supported."
    if isinstance(node, exp.Func):
        return "Functions are not supported in WHERE; compare columns with literals."
    return "WHERE takes comparisons, IN, BETWEEN, AND, OR and NOT between columns and literals."
