"""The SQL subset: sqlglot parses, an allow-list walk builds our plan (R-IN-01..03).

Only one `SELECT` of group columns and aggregates over one dataset passes, with a `WHERE` of
comparisons, `IN`, `BETWEEN`, `AND`/`OR`/`NOT` between columns and literals, `GROUP BY`
columns and `ORDER BY`/`LIMIT` (post-processing). Every node the walk does not know is
refused with its line and column and a message a SQL user understands. The requester's text
never goes further than this module: the engine compiles our plan, not SQL.
"""

from __future__ import annotations

from decimal import Decimal
from typing import cast

import sqlglot
from sqlglot import exp

from gateway.core.jsonplan import parse_json_plan
from gateway.core.plan import (
    MAX_AGGREGATES,
    MAX_DEPTH,
    MAX_GROUP_BY,
    MAX_SQL_CHARS,
    Aggregate,
    OrderKey,
    Output,
    Plan,
)
from gateway.core.sqlparts import Locator, fail, read_column, read_predicate, read_scalar
from gateway.errors import InvalidQuery

__all__ = ["parse_json_plan", "parse_sql"]

_AGGREGATE_NODES: dict[type[exp.Expression], str] = {
    exp.Count: "count", exp.Sum: "sum", exp.Avg: "mean", exp.Median: "median", exp.Quantile: "quantile",
}
_SELECT_PARTS = {"expressions", "from_", "where", "group", "order", "limit"}
_REFUSED_PARTS = {  # part of a SELECT -> (keyword written for it, why it is refused)
    "joins": ("join", "JOIN is not supported: a query reads one dataset"),
    "with_": ("with", "WITH (common table expressions) is not supported"),
    "having": ("having", "HAVING is not supported; filter the released rows yourself"),
    "distinct": ("distinct", "SELECT DISTINCT is not supported"),
    "offset": ("offset", "OFFSET is not supported; use LIMIT"),
    "qualify": ("qualify", "QUALIFY is not supported"),
    "windows": ("window", "Window functions are not supported"),
    "laterals": ("lateral", "LATERAL is not supported"),
}


def parse_sql(sql: str, *, epsilon: Decimal, delta: Decimal = Decimal(0),
              max_chars: int = MAX_SQL_CHARS, dataset: str | None = None) -> Plan:
    """Requester SQL -> Plan, or InvalidQuery with a position; `dataset`, when given, must match."""
    if len(sql) > max_chars:
        raise InvalidQuery(f"The SQL text is longer than {max_chars} characters.")
    at = Locator(sql)
    _check_nesting(sql, at)
    statement = _one_select(sql, at)
    _check_depth(statement, at)
    return _SelectReader(statement, at).plan(Decimal(epsilon), Decimal(delta), dataset)


def _check_nesting(sql: str, at: Locator) -> None:
    """Parentheses nested deeper than MAX_DEPTH are refused before the parser sees them."""
    depth, quote = 0, ""
    for offset, char in enumerate(sql):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
            if depth > MAX_DEPTH:
                raise at.error(f"Parentheses are nested deeper than {MAX_DEPTH} levels.", offset)
        elif char == ")":
            depth = max(0, depth - 1)


def _one_select(sql: str, at: Locator) -> exp.Select:
    try:
        statements = [s for s in sqlglot.parse(sql) if s is not None]
    except sqlglot.errors.ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        line, end = first.get("line"), first.get("col")
        column = end - len(first.get("highlight") or "x") + 1 if isinstance(end, int) else None
        raise InvalidQuery(f"Syntax error: {first.get('description', 'the query does not parse')}.",
                           line=line, column=column) from None
    except sqlglot.errors.TokenError:
        raise at.error("Syntax error: a quoted string or name is not closed.", at.unclosed_quote()) from None
    except (sqlglot.errors.SqlglotError, RecursionError):
        raise InvalidQuery("Syntax error: the query does not parse.") from None
    if not statements:
        raise InvalidQuery("The query is empty: send one SELECT statement.")
    if len(statements) > 1:
        fail("Send exactly one SELECT statement; several statements are not allowed.",
             cast(exp.Expression, statements[1]), at)
    statement = statements[0]
    if not isinstance(statement, exp.Select):
        kind = statement.key.upper()
        raise at.error(f"Only SELECT queries are allowed, not {kind}.", at.keyword(statement.key))
    return statement


def _check_depth(root: exp.Expression, at: Locator) -> None:
    """AST depth <= MAX_DEPTH, counting a chain of ANDs (or ORs) as one level; iterative."""
    stack: list[tuple[exp.Expression, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            fail(f"The query is nested deeper than {MAX_DEPTH} levels.", node, at)
        for child in node.iter_expressions():
            same_chain = isinstance(child, exp.And | exp.Or) and type(child) is type(node)
            stack.append((child, depth if same_chain else depth + 1))


class _SelectReader:
    """Reads one allowed SELECT into a Plan, refusing everything else with a position."""

    def __init__(self, select: exp.Select, at: Locator) -> None:
        self.select, self.at = select, at
        self.table_names: set[str] = set()

    def plan(self, epsilon: Decimal, delta: Decimal, dataset: str | None) -> Plan:
        self._refuse_extra_parts()
        name = self._dataset(dataset)
        group_by = self._group_by()
        outputs = self._outputs(group_by)
        aggregates = tuple(o.aggregate for o in outputs if o.aggregate is not None)
        if not aggregates:
            fail("Select at least one aggregate: COUNT(*), COUNT, SUM, AVG, MEDIAN or QUANTILE.",
                 self.select, self.at)
        if len(aggregates) > MAX_AGGREGATES:
            fail(f"At most {MAX_AGGREGATES} aggregates per query.", self.select, self.at)
        where = self.select.args.get("where")
        predicate = read_predicate(where.this, self.at, self.table_names) if where else None
        return Plan(dataset=name, select=outputs, group_by=group_by, aggregates=aggregates,
                    where=predicate, order_by=self._order_by(outputs), limit=self._limit(),
                    epsilon=epsilon, delta=delta)

    def _refuse_extra_parts(self) -> None:
        for key, value in self.select.args.items():
            if value and key not in _SELECT_PARTS:
                word, reason = _REFUSED_PARTS.get(key, (key.rstrip("_"), f"{key.rstrip('_').upper()} is not supported"))
                node = value[0] if isinstance(value, list) else value
                offset = self.at.keyword(word)
                if offset is None and isinstance(node, exp.Expression):
                    offset = self.at.offset_of(node)
                raise self.at.error(reason + ".", offset)

    def _dataset(self, expected: str | None) -> str:
        source = self.select.args.get("from_")
        if source is None:
            fail("Name the dataset to query in FROM.", self.select, self.at)
        table = source.this
        if isinstance(table, exp.Subquery):
            fail("Subqueries are not supported: FROM names one dataset.", table, self.at)
        if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
            fail("FROM names one dataset; table functions and expressions are not allowed.", table, self.at)
        extra = [k for k, v in table.args.items() if v and k not in ("this", "alias")]
        if extra:
            fail(f"FROM names one dataset without {extra[0]}.", table, self.at)
        alias = table.args.get("alias")
        if alias is not None and alias.columns:
            fail("A dataset alias cannot rename columns.", alias, self.at)
        name = _identifier(table.this)
        self.table_names = {name} | ({_identifier(alias.this)} if alias is not None else set())
        if expected is not None and name != expected:
            fail(f"The query reads {name!r} but the request names the dataset {expected!r}.", table, self.at)
        return name

    def _group_by(self) -> tuple[str, ...]:
        group = self.select.args.get("group")
        if group is None:
            return ()
        extra = [k for k, v in group.args.items() if v and k != "expressions"]
        if extra:
            fail(f"GROUP BY {extra[0].upper()} is not supported; group by columns.", group, self.at)
        keys: list[str] = []
        for node in group.expressions:
            if isinstance(node, exp.Literal) and not node.is_string:
                node = self._select_item(node)
            keys.append(read_column(node, self.at, self.table_names, "GROUP BY takes column names"))
        if len(set(keys)) > MAX_GROUP_BY:
            fail(f"At most {MAX_GROUP_BY} GROUP BY columns per query.", group, self.at)
        return tuple(dict.fromkeys(keys))

    def _select_item(self, ordinal: exp.Literal) -> exp.Expression:
        items = self.select.expressions
        position = int(ordinal.this) if ordinal.this.isdigit() else 0
        if not 1 <= position <= len(items):
            fail(f"There is no selected column number {ordinal.this}.", ordinal, self.at)
        item = items[position - 1]
        return cast(exp.Expression, item.this if isinstance(item, exp.Alias) else item)

    def _outputs(self, group_by: tuple[str, ...]) -> tuple[Output, ...]:
        outputs: list[Output] = []
        for item in self.select.expressions:
            node, alias = (item.this, _identifier(item.args["alias"])) if isinstance(item, exp.Alias) else (item, None)
            output = self._output(node, alias, group_by)
            if output.name in {o.name for o in outputs}:
                fail(f"Two selected columns are both named {output.name!r}; rename one with AS.", item, self.at)
            outputs.append(output)
        return tuple(outputs)

    def _output(self, node: exp.Expression, alias: str | None, group_by: tuple[str, ...]) -> Output:
        if isinstance(node, exp.Star):
            fail("SELECT * is not allowed: select group columns and aggregates.", node, self.at)
        if isinstance(node, exp.Column):
            column = read_column(node, self.at, self.table_names, "")
            if column not in group_by:
                fail(f"Column {column!r} must be in GROUP BY or inside an aggregate.", node, self.at)
            return Output(name=alias or column, key=column)
        aggregate = self._aggregate(node)
        return Output(name=alias or aggregate.label, aggregate=aggregate)

    def _aggregate(self, node: exp.Expression) -> Aggregate:
        if isinstance(node, exp.Window):
            fail("Window functions (OVER) are not supported.", node, self.at)
        func = _AGGREGATE_NODES.get(type(node))
        if func is None:
            fail(_unknown_function(node), node, self.at)
        arg = node.this
        if isinstance(arg, exp.Distinct):
            fail(f"{node.key.upper()}(DISTINCT ...) is not supported.", node, self.at)
        if func == "count" and isinstance(arg, exp.Star):
            return Aggregate("count")
        column = read_column(arg, self.at, self.table_names, f"{_sql_name(func)} takes one column name")
        extra = [v for k, v in node.args.items() if v and k not in ("this", "quantile", "big_int")]
        if extra:
            fail(f"{_sql_name(func)} takes {'two arguments' if func == 'quantile' else 'one column'}.", node, self.at)
        if func != "quantile":
            return Aggregate(func, column)  # type: ignore[arg-type]
        return Aggregate("quantile", column, self._quantile_level(node))

    def _quantile_level(self, node: exp.Expression) -> float:
        level = node.args.get("quantile")
        value = read_scalar(level, self.at) if level is not None else None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            fail("QUANTILE(column, q) needs a number q with 0 < q < 1.", level or node, self.at)
        return float(value)

    def _order_by(self, outputs: tuple[Output, ...]) -> tuple[OrderKey, ...]:
        order = self.select.args.get("order")
        if order is None:
            return ()
        keys = []
        for ordered in order.expressions:
            node = ordered.this
            if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
                position = int(node.this)
                if not 1 <= position <= len(outputs):
                    fail(f"There is no selected column number {position}.", node, self.at)
                target = outputs[position - 1]
            else:
                target = self._order_target(node, outputs)
            keys.append(OrderKey(target.name, bool(ordered.args.get("desc"))))
        return tuple(keys)

    def _order_target(self, node: exp.Expression, outputs: tuple[Output, ...]) -> Output:
        if isinstance(node, exp.Column) and not node.table:
            name = _identifier(node.this)
            for out in outputs:
                if out.name == name:
                    return out
        if isinstance(node, exp.Column):
            column = read_column(node, self.at, self.table_names, "")
            for out in outputs:
                if out.key == column:
                    return out
        elif type(node) in _AGGREGATE_NODES:
            wanted = self._aggregate(node)
            for out in outputs:
                if out.aggregate == wanted:
                    return out
        fail("ORDER BY names a selected column, alias, aggregate or position.", node, self.at)

    def _limit(self) -> int | None:
        limit = self.select.args.get("limit")
        if limit is None:
            return None
        value = read_scalar(limit.expression, self.at) if limit.expression is not None else None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            fail("LIMIT takes a whole number of rows.", limit, self.at)
        return value


def _identifier(node: exp.Expression) -> str:
    """Unquoted names are case-insensitive, as in SQL; quoted names are kept as written."""
    name = node.name if isinstance(node, exp.Identifier) else str(node)
    return name if isinstance(node, exp.Identifier) and node.quoted else name.lower()


def _sql_name(func: str) -> str:
    return "AVG" if func == "mean" else func.upper()


def _unknown_function(node: exp.Expression) -> str:
    allowed = "COUNT, SUM, AVG, MEDIAN and QUANTILE"
    if isinstance(node, exp.Func):
        name = node.name.upper() if isinstance(node, exp.Anonymous) else node.sql_name()
        return f"Function {name} is not supported; the aggregates are {allowed}."
    if isinstance(node, exp.Literal | exp.Boolean | exp.Null | exp.Neg):
        return "Only group columns and aggregates can be selected, not literal values."
    return f"Select group columns and the aggregates {allowed}; expressions are not supported."
