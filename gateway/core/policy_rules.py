"""The rules of a policy that a JSON Schema cannot say: bounds in order, shares that add up, the
privacy-id column hidden, sources that stay under the data root... each reported where it is written."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema

from gateway.core.policy import BASIS_POINTS, OBJECT_STORE_SCHEMES, decimal_of
from gateway.core.policy_yaml import Problems
from gateway.core.pricing import policy_pricing_problems


class Sound:
    """Whether a part of the document exists and passed the schema, so its rules may run."""

    def __init__(self, doc: dict[str, Any], broken: list[tuple[Any, ...]]) -> None:
        self.doc, self.broken = doc, broken

    def __call__(self, *path: Any) -> bool:
        node: Any = self.doc
        for step in path:
            if not isinstance(node, dict) or step not in node:
                return False
            node = node[step]
        return not any(bad[:len(path)] == path for bad in self.broken)


def _schema_message(err: jsonschema.ValidationError) -> str:
    if err.validator == "oneOf" and err.absolute_path and err.absolute_path[-1] == "privacy_unit":
        return ("privacy_unit must be {kind: row, attestation: ...} or "
                "{kind: identifier, column: ..., max_contributions: N}")
    return err.message


def report_schema_error(err: jsonschema.ValidationError, problems: Problems) -> None:
    path = tuple(err.absolute_path)
    problems.broken.append(path)
    where = ".".join(map(str, path)) or "(top)"
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = err.schema.get("properties", {}) if isinstance(err.schema, dict) else {}
        # Keys that are not text were reported where they are written.
        for key in sorted(k for k in err.instance if k not in known and isinstance(k, str)):
            problems.add_key(path, key, f"{where}: unknown field {key!r}")
        return
    problems.add(path, f"{where}: {_schema_message(err)}")


def check_semantics(doc: dict[str, Any], problems: Problems, sound: Sound, *, stored: bool = False) -> None:
    """Every rule on every sound part. `stored`: a document already published, read back; the
    rules added since it may have been published (delta caps, issue 11.2) refuse new documents
    only, and an old one reads with its delta caps at 0, so it releases no private keys."""
    if isinstance(doc.get("columns"), dict):
        private_keys = sound("private_keys") and doc["private_keys"]["allowed"] is True
        for name, col in doc["columns"].items():
            if sound("columns", name):
                _check_column(name, col, problems, private_keys)
    if sound("privacy_unit"):
        _check_unit(doc, problems, sound)
    if sound("epsilon"):
        _check_epsilon(doc, problems, sound)
    if sound("private_keys"):
        pk = doc["private_keys"]
        if pk["allowed"] and not (0 < decimal_of(pk.get("delta", "0")) < Decimal("1e-3")):
            problems.add(("private_keys",), "private_keys.allowed needs a delta in (0, 1e-3)")
        if pk["allowed"] and sound("budget") and "delta" not in doc["budget"] and not stored:
            problems.add(("private_keys",), "private keys spend delta: budget.delta needs per_grant, "
                                            "global_cap and lifetime_cap")
    if not stored:
        _check_delta(doc, problems, sound)
    if sound("revenue_shares"):
        _check_shares(doc, problems, sound)
    if sound("source"):
        _check_source(doc["source"], problems)
    if sound("pricing"):
        for path, message in policy_pricing_problems(doc["pricing"]):
            problems.add(path, message)


def _check_unit(doc: dict[str, Any], problems: Problems, sound: Sound) -> None:
    unit = doc["privacy_unit"]
    if unit["kind"] != "identifier" or not isinstance(doc.get("columns"), dict):
        return
    name = unit["column"]
    if name not in doc["columns"]:
        problems.add(("privacy_unit", "column"),
                     f"privacy_unit.column {name!r} is not a declared column")
    elif sound("columns", name) and not doc["columns"][name].get("hidden"):
        problems.add_key(("columns",), name, "the privacy-id column must be hidden: true")


def _check_epsilon(doc: dict[str, Any], problems: Problems, sound: Sound) -> None:
    lo, hi = decimal_of(doc["epsilon"]["min"]), decimal_of(doc["epsilon"]["max"])
    if lo <= 0 or lo > hi:
        problems.add(("epsilon", "min"), "epsilon.min must be positive and at most epsilon.max")
    if sound("important", "epsilon_max") and decimal_of(doc["important"]["epsilon_max"]) > hi:
        problems.add(("important", "epsilon_max"),
                     "important.epsilon_max cannot exceed epsilon.max")
    if sound("budget", "global_cap") and decimal_of(doc["budget"]["global_cap"]) < hi:
        problems.add(("budget", "global_cap"),
                     "budget.global_cap is smaller than one query's epsilon.max")
    if (sound("budget", "global_cap") and sound("budget", "lifetime_cap")
            and decimal_of(doc["budget"]["lifetime_cap"]) < decimal_of(doc["budget"]["global_cap"])):
        problems.add(("budget", "lifetime_cap"), "budget.lifetime_cap is smaller than budget.global_cap")


# "Well below 1/rows", checkable without data: max_rows bounds the rows, so the people too; a
# delta of at most a tenth of 1/max_rows lets, in expectation, fewer than one person in ten lose
# the guarantee, where 1/n is what publishing one random person's row would cost.
DELTA_HEADROOM = 10


def _check_delta(doc: dict[str, Any], problems: Problems, sound: Sound) -> None:
    """Every delta figure well below 1/max_rows, and each at least the one it must hold."""
    chain: list[tuple[tuple[str, ...], Decimal]] = []
    if sound("private_keys", "delta") and doc["private_keys"].get("allowed"):
        chain.append((("private_keys", "delta"), decimal_of(doc["private_keys"]["delta"])))
    if sound("budget", "delta"):
        chain += [(("budget", "delta", k), decimal_of(doc["budget"]["delta"][k]))
                  for k in ("per_grant", "global_cap", "lifetime_cap")]
    if sound("max_rows"):
        ceiling = Decimal(1) / (DELTA_HEADROOM * doc["max_rows"])
        for path, value in chain:
            if value > ceiling:
                problems.add(path, f"{'.'.join(path)} {value} is not well below 1/max_rows: at most "
                                   f"{ceiling.normalize()} (a tenth of 1/{doc['max_rows']})")
    for (low_path, low), (high_path, high) in pairwise(chain):
        if high < low:
            problems.add(high_path, f"{'.'.join(high_path)} is smaller than {'.'.join(low_path)}")


def _check_shares(doc: dict[str, Any], problems: Problems, sound: Sound) -> None:
    shares = doc["revenue_shares"]
    if sum(shares.values()) != BASIS_POINTS:
        problems.add(("revenue_shares",), f"revenue_shares must sum to {BASIS_POINTS} basis points")
    if (sound("owner") and sound("source", "kind") and doc["owner"] not in shares
            and doc["source"]["kind"] != "view"):
        problems.add(("revenue_shares",), f"the owner {doc['owner']!r} must have a revenue share")


def _check_column(name: str, col: dict[str, Any], problems: Problems, private_keys: bool) -> None:
    def at(*path: Any, message: str) -> None:
        problems.add(("columns", name, *path), f"{name}: {message}")

    numeric = col["type"] in ("integer", "float")
    if "bounds" in col:
        lo, hi = col["bounds"]
        if not numeric:
            at("bounds", message="bounds are only for integer or float columns")
        elif lo >= hi:
            at("bounds", message="bounds must be [lower, upper] with lower < upper")
    if col.get("aggregate") and numeric and "bounds" not in col:
        at("aggregate", message="a numeric column that may be aggregated needs bounds")
    # Without categories the keys come from the data: only OpenDP's threshold may release them.
    if col.get("group_by") and "categories" not in col and not private_keys:
        at("group_by", message="a group-by column needs its public categories unless private_keys.allowed is true")
    if col.get("group_by") and col["type"] == "float":
        at("group_by", message="a float column cannot be a group key")
    for index, cat in enumerate(col.get("categories", [])):
        if not _category_fits(col["type"], cat):
            at("categories", index, message=f"category {cat!r} is not a {col['type']}")
    if col.get("hidden") and (col.get("group_by") or col.get("aggregate") or col.get("filter")):
        at("hidden", message="a hidden column cannot be grouped, aggregated or filtered")
    if col.get("classification") == "core" and not col.get("hidden"):
        at("classification", message="core data is never queryable; mark it hidden: true")


def _category_fits(kind: str, value: Any) -> bool:
    return {"string": isinstance(value, str), "boolean": isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool)}.get(kind, False)


def _check_source(src: dict[str, Any], problems: Problems) -> None:
    need = {"parquet": "path", "csv": "path", "postgres": "table", "http": "url", "view": "base"}[src["kind"]]
    if need not in src:
        problems.add(("source",), f"source of kind {src['kind']} needs {need!r}")
    if "path" in src and _escapes_data_root(src["path"]):
        problems.add(("source", "path"), "source.path must stay inside the data root (relative, "
                     "no '..') or be an object-store URL")
    if src["kind"] == "postgres" and "dsn_env" not in src:
        problems.add(("source",), "a postgres source names the environment variable holding its DSN (dsn_env)")
    if src["kind"] == "view" and not ("join" in src and "on" in src):
        problems.add(("source",), "a view needs base, join and on")


def _escapes_data_root(path: str) -> bool:
    """Absolute, home-relative, climbing out with '..', or a URL that is not object storage.

    Mirrors how file sources resolve a path (gateway/data/connectors/files.py), so the lint
    refuses before start what the loader would refuse later (R-IN-06).
    """
    parts = urlsplit(path)
    scheme = parts.scheme.lower()
    if scheme in OBJECT_STORE_SCHEMES:
        return False
    if scheme == "file":
        path = unquote(parts.path)
    elif len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        return True
    segments = path.replace("\\", "/").split("/")
    return path.startswith(("/", "\\", "~")) or ".." in segments
