"""A PostgreSQL table or view, read through ADBC in a read-only session, streamed to Parquet.

The DSN comes from the environment variable the policy names (`dsn_env`), so no secret is in
a policy. The session is opened with `default_transaction_read_only=on` and a statement
timeout; the source department should still grant the gateway's role SELECT only. The
catalog is read first, so that a column missing or a type changed is reported as such
rather than as a failing cast, and at most `max_rows + 1` rows are read: one more than the
policy allows is enough to refuse the load.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
from psycopg.conninfo import make_conninfo

from gateway.core.policy import DatasetPolicy
from gateway.data.connectors import SourceUnavailable
from gateway.data.validate import Problem, SnapshotRefused

# Which PostgreSQL types can stand for a policy type, and the cast that normalises them.
_ACCEPTS: dict[str, frozenset[str]] = {
    "integer": frozenset({"int2", "int4", "int8"}),
    "float": frozenset({"int2", "int4", "int8", "float4", "float8", "numeric"}),
    "boolean": frozenset({"bool"}),
}
_STRING_CATEGORIES = frozenset({"S", "E"})  # text-like and enum types
_CAST = {"integer": "int8", "float": "float8", "string": "text", "boolean": "bool"}


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_table(table: str) -> str:
    """`schema.table` -> `"schema"."table"`; the policy schema allows only [A-Za-z0-9_.]."""
    return ".".join(quote_identifier(part) for part in table.split("."))


def conninfo(dsn_env: str, timeout_seconds: float) -> str:
    dsn = os.environ.get(dsn_env, "")
    if not dsn:
        raise SourceUnavailable(f"postgres: the environment variable {dsn_env} is not set")
    options = (f"-c default_transaction_read_only=on "
               f"-c statement_timeout={max(1, int(timeout_seconds * 1000))}")
    try:
        return make_conninfo(dsn, options=options, connect_timeout=max(1, int(timeout_seconds)))
    except psycopg.ProgrammingError as exc:
        raise SourceUnavailable(f"postgres: the DSN in {dsn_env} is malformed") from exc


def read_table(policy: DatasetPolicy, dest: Path, *, dsn_env: str, table: str,
               timeout_seconds: float = 60.0) -> None:
    """Write the policy's columns of `table` to `dest` (Parquet); blocking, run it in a thread."""
    import adbc_driver_postgresql.dbapi as adbc

    try:
        with adbc.connect(conninfo(dsn_env, timeout_seconds)) as conn, conn.cursor() as cur:
            found = _catalog(cur, table)
            problems = _schema_problems(policy, table, found)
            if problems:
                raise SnapshotRefused(policy.dataset, problems)
            cur.execute(_select(policy, table), parameters=(policy.max_rows + 1,))
            reader = cur.fetch_record_batch()
            schema = reader.schema.remove_metadata()
            with pq.ParquetWriter(dest, schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
    except (SnapshotRefused, SourceUnavailable):
        raise
    except adbc.Error as exc:
        raise SourceUnavailable(f"postgres: {type(exc).__name__} reading {table}") from exc


def _catalog(cur: object, table: str) -> dict[str, tuple[str, str]]:
    """column -> (type name, type category) of a table or view; {} when it does not exist."""
    cur.execute(  # type: ignore[attr-defined]
        "SELECT a.attname, t.typname, t.typcategory FROM pg_attribute a "
        "JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
        parameters=(quote_table(table),))
    rows: Sequence[tuple[str, str, str]] = cur.fetchall()  # type: ignore[attr-defined]
    return {name: (typname, category) for name, typname, category in rows}


def _schema_problems(policy: DatasetPolicy, table: str,
                     found: dict[str, tuple[str, str]]) -> list[Problem]:
    if not found:
        return [Problem("missing_table", f"table or view {table!r} does not exist or is not "
                        "visible to the gateway's role")]
    problems = []
    for col in policy.columns:
        if col.name not in found:
            problems.append(Problem("missing_column", f"column {col.name!r} is missing", col.name))
            continue
        typname, category = found[col.name]
        fits = (category in _STRING_CATEGORIES or typname == "uuid") if col.type == "string" \
            else typname in _ACCEPTS[col.type]
        if not fits:
            problems.append(Problem("type_changed", f"column {col.name!r} should be {col.type}, "
                                    f"found PostgreSQL {typname}", col.name))
    return problems


def _select(policy: DatasetPolicy, table: str) -> str:
    columns = ", ".join(f"{quote_identifier(c.name)}::{_CAST[c.type]} AS {quote_identifier(c.name)}"
                        for c in policy.columns)
    return f"SELECT {columns} FROM {quote_table(table)} LIMIT $1"
