"""Dataset policies: the model, and validation of a YAML text with every error located.

A policy says what may be asked of one dataset, at what privacy cost and price. It is data:
parsed from YAML with a loader that refuses duplicate keys and aliases (R-IN-06), checked
against the JSON Schema in `policies/` and then against rules a schema cannot say (bounds in
order, shares that add up, the privacy-id column hidden...). Every problem is reported with
its file, line and column; none stops the others from being found.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import jsonschema
import yaml

from gateway.errors import Located, PolicyInvalid

Level = Literal["general", "important", "core"]
AGGREGATES = ("count", "sum", "mean", "median", "quantile")
PARTY_BUREAU, PARTY_MERCHANT = "bureau", "merchant"
BASIS_POINTS = 10_000
# Object storage a file source may name instead of a path under the data root.
OBJECT_STORE_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "azure", "abfs", "abfss"})


@dataclass(frozen=True)
class Column:
    name: str
    type: Literal["string", "integer", "float", "boolean"]
    classification: Level = "general"
    categories: tuple[str | int | bool, ...] | None = None
    bounds: tuple[float, float] | None = None
    candidates: int = 101
    group_by: bool = False
    aggregate: bool = False
    filter: bool = False
    hidden: bool = False
    description: str = ""

    @property
    def numeric(self) -> bool:
        return self.type in ("integer", "float")

    @property
    def referenceable(self) -> bool:
        """Hidden and core columns can never appear in a query (R-DP-09)."""
        return not self.hidden and self.classification != "core"


@dataclass(frozen=True)
class PrivacyUnit:
    kind: Literal["row", "identifier"]
    column: str | None = None
    max_contributions: int = 1
    attestation: str = ""


@dataclass(frozen=True)
class Source:
    kind: str
    options: tuple[tuple[str, Any], ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)


@dataclass(frozen=True)
class Pricing:
    currency: str = "CNY"
    per_call_minor: int = 0
    cached_call_minor: int = 0
    free_calls_per_period: int = 0


@dataclass(frozen=True)
class DatasetPolicy:
    dataset: str
    title: str
    description: str
    owner: str
    classification: Level
    source: Source
    privacy_unit: PrivacyUnit
    max_rows: int
    columns: tuple[Column, ...]
    aggregates: frozenset[str]
    epsilon_min: Decimal
    epsilon_max: Decimal
    important_epsilon_max: Decimal | None
    important_max_cells: int | None
    important_group_by: bool
    private_keys_allowed: bool
    private_keys_delta: Decimal
    max_cells: int
    global_cap: Decimal
    lifetime_cap: Decimal | None
    pool: str
    default_grant: Decimal
    cache_scope: Literal["requester", "dataset"]
    pricing: Pricing
    revenue_shares: tuple[tuple[str, int], ...]
    requires_source_cosign: bool
    auto_approve_epsilon: Decimal | None
    rate_per_second: float | None
    rate_burst: int | None
    version: str
    document: Mapping[str, Any]

    def column(self, name: str) -> Column | None:
        for col in self.columns:
            if col.name == name:
                return col
        return None

    @property
    def queryable(self) -> bool:
        """Core data is never queryable."""
        return self.classification != "core"

    @property
    def public_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.referenceable)


# ---------------------------------------------------------------- YAML with positions


class _StrictLoader(yaml.SafeLoader):
    """safe_load without aliases, so that no alias bomb can expand (R-IN-06)."""


def _compose_strict(text: str) -> yaml.Node | None:
    for event in yaml.parse(text, Loader=_StrictLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            # The stubs type start_mark as the C or the Python Mark; both carry line and column.
            raise yaml.MarkedYAMLError(problem="anchors and aliases are not allowed",
                                       problem_mark=event.start_mark)  # type: ignore[arg-type]
    return yaml.compose(text, Loader=_StrictLoader)


_TEXT_TAG = "tag:yaml.org,2002:str"


def _key_problems(node: yaml.Node | None) -> Iterator[tuple[yaml.Node, str]]:
    """Keys written twice, and keys that are not text (YAML reads `1:`, `yes:`, `null:` otherwise)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag != _TEXT_TAG:
                shown = repr(key.value) if isinstance(key, yaml.ScalarNode) else "a collection"
                yield key, f"key {shown} is not text; quote it"
            elif key.value in seen:
                yield key, f"duplicate key {key.value!r}"
            else:
                seen.add(key.value)
            yield from _key_problems(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _key_problems(item)


def _infinite_numbers(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Where YAML's .inf or .nan stand: numbers the schema accepts but no limit can be."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _infinite_numbers(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _infinite_numbers(item, (*path, index))
    elif isinstance(value, float) and not math.isfinite(value):
        yield path


def _node_at(root: yaml.Node | None, path: tuple[Any, ...]) -> yaml.Node | None:
    """The deepest node along a JSON path (keys and indexes), for locating an error."""
    node = root
    for step in path:
        if isinstance(node, yaml.MappingNode):
            # The last of duplicate keys: the one the loaded document holds.
            nxt = next((v for k, v in reversed(node.value) if k.value == step), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            nxt = node.value[step]
        else:
            nxt = None
        if nxt is None:
            return node
        node = nxt
    return node


def _key_node(root: yaml.Node | None, path: tuple[Any, ...], key: Any) -> yaml.Node | None:
    """The key node of `key` in the mapping at `path`: where an unknown field is written."""
    parent = _node_at(root, path)
    if isinstance(parent, yaml.MappingNode):
        return next((k for k, _v in reversed(parent.value) if k.value == key), parent)
    return parent


class _Problems:
    def __init__(self, filename: str, root: yaml.Node | None) -> None:
        self.filename, self.root, self.items = filename, root, list[Located]()
        self.broken: list[tuple[Any, ...]] = []  # paths the schema found wrong

    def add(self, path: tuple[Any, ...], message: str) -> None:
        self.add_at(_node_at(self.root, path), message)

    def add_key(self, path: tuple[Any, ...], key: Any, message: str) -> None:
        self.add_at(_key_node(self.root, path, key), message)

    def add_at(self, node: yaml.Node | None, message: str) -> None:
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        self.items.append(Located(self.filename, line, col, message))


# ---------------------------------------------------------------- validation


def parse_policy(text: str, filename: str, schema: Mapping[str, Any]) -> DatasetPolicy:
    """YAML text -> DatasetPolicy, or PolicyInvalid listing every located problem."""
    try:
        root = _compose_strict(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PolicyInvalid([Located(filename, line, col, f"YAML: {exc.problem or exc}")]) from None
    problems = _Problems(filename, root)
    for key, message in _key_problems(root):
        problems.add_at(key, message)
    try:
        doc = yaml.load(text, Loader=_StrictLoader) if root is not None else None
    except yaml.MarkedYAMLError:  # a collection as a key: reported above
        raise PolicyInvalid(problems.items) from None
    if not isinstance(doc, dict):
        problems.add((), "a policy is a mapping with the keys the schema lists")
        raise PolicyInvalid(problems.items)
    for path in _infinite_numbers(doc):
        problems.broken.append(path)
        problems.add(path, f"{'.'.join(map(str, path))}: numbers must be finite, not .inf or .nan")
    validator = jsonschema.Draft202012Validator(schema)
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        _report_schema_error(err, problems)
    # Semantic rules run on every part the schema found sound, so one pass reports them all.
    _check_semantics(doc, problems, _Sound(doc, problems.broken))
    if problems.items:
        raise PolicyInvalid(problems.items)
    return _build(doc)


def _report_schema_error(err: jsonschema.ValidationError, problems: _Problems) -> None:
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


class _Sound:
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


def _dec(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the schema's pattern excludes it
        raise ValueError(text) from None


def _check_semantics(doc: dict[str, Any], problems: _Problems, sound: _Sound) -> None:
    if isinstance(doc.get("columns"), dict):
        for name, col in doc["columns"].items():
            if sound("columns", name):
                _check_column(name, col, problems)
    if sound("privacy_unit"):
        _check_unit(doc, problems, sound)
    if sound("epsilon"):
        _check_epsilon(doc, problems, sound)
    if sound("private_keys"):
        pk = doc["private_keys"]
        if pk["allowed"] and not (0 < _dec(pk.get("delta", "0")) < Decimal("1e-3")):
            problems.add(("private_keys",), "private_keys.allowed needs a delta in (0, 1e-3)")
    if sound("revenue_shares"):
        _check_shares(doc, problems, sound)
    if sound("source"):
        _check_source(doc["source"], problems)


def _check_unit(doc: dict[str, Any], problems: _Problems, sound: _Sound) -> None:
    unit = doc["privacy_unit"]
    if unit["kind"] != "identifier" or not isinstance(doc.get("columns"), dict):
        return
    name = unit["column"]
    if name not in doc["columns"]:
        problems.add(("privacy_unit", "column"),
                     f"privacy_unit.column {name!r} is not a declared column")
    elif sound("columns", name) and not doc["columns"][name].get("hidden"):
        problems.add_key(("columns",), name, "the privacy-id column must be hidden: true")


def _check_epsilon(doc: dict[str, Any], problems: _Problems, sound: _Sound) -> None:
    lo, hi = _dec(doc["epsilon"]["min"]), _dec(doc["epsilon"]["max"])
    if lo <= 0 or lo > hi:
        problems.add(("epsilon", "min"), "epsilon.min must be positive and at most epsilon.max")
    if sound("important", "epsilon_max") and _dec(doc["important"]["epsilon_max"]) > hi:
        problems.add(("important", "epsilon_max"),
                     "important.epsilon_max cannot exceed epsilon.max")
    if sound("budget", "global_cap") and _dec(doc["budget"]["global_cap"]) < hi:
        problems.add(("budget", "global_cap"),
                     "budget.global_cap is smaller than one query's epsilon.max")
    if (sound("budget", "global_cap") and sound("budget", "lifetime_cap")
            and _dec(doc["budget"]["lifetime_cap"]) < _dec(doc["budget"]["global_cap"])):
        problems.add(("budget", "lifetime_cap"), "budget.lifetime_cap is smaller than budget.global_cap")


def _check_shares(doc: dict[str, Any], problems: _Problems, sound: _Sound) -> None:
    shares = doc["revenue_shares"]
    if sum(shares.values()) != BASIS_POINTS:
        problems.add(("revenue_shares",), f"revenue_shares must sum to {BASIS_POINTS} basis points")
    if (sound("owner") and sound("source", "kind") and doc["owner"] not in shares
            and doc["source"]["kind"] != "view"):
        problems.add(("revenue_shares",), f"the owner {doc['owner']!r} must have a revenue share")


def _check_column(name: str, col: dict[str, Any], problems: _Problems) -> None:
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
    if col.get("group_by") and "categories" not in col:
        at("group_by", message="a group-by column needs its public categories")
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


def _check_source(src: dict[str, Any], problems: _Problems) -> None:
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


def content_hash(doc: Mapping[str, Any]) -> str:
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _build(doc: dict[str, Any]) -> DatasetPolicy:
    unit = doc["privacy_unit"]
    imp = doc.get("important", {})
    pk = doc.get("private_keys", {"allowed": False})
    pricing = doc["pricing"]
    access = doc.get("access", {})
    rate = doc.get("rate_limit", {})
    budget = doc["budget"]
    auto = access.get("auto_approve_epsilon")
    return DatasetPolicy(
        dataset=doc["dataset"], title=doc["title"], description=doc.get("description", ""),
        owner=doc["owner"], classification=doc["classification"],
        source=Source(doc["source"]["kind"], tuple(sorted((k, v) for k, v in doc["source"].items() if k != "kind"))),
        privacy_unit=PrivacyUnit(unit["kind"], unit.get("column"), unit.get("max_contributions", 1),
                                 unit.get("attestation", "")),
        max_rows=doc["max_rows"],
        columns=tuple(_build_column(n, c) for n, c in doc["columns"].items()),
        aggregates=frozenset(doc["aggregates"]),
        epsilon_min=_dec(doc["epsilon"]["min"]), epsilon_max=_dec(doc["epsilon"]["max"]),
        important_epsilon_max=_dec(imp["epsilon_max"]) if "epsilon_max" in imp else None,
        important_max_cells=imp.get("max_cells"), important_group_by=imp.get("group_by", True),
        private_keys_allowed=pk["allowed"], private_keys_delta=_dec(pk.get("delta", "0")),
        max_cells=doc.get("max_cells", 1000),
        global_cap=_dec(budget["global_cap"]), pool=budget.get("pool", doc["dataset"]),
        lifetime_cap=_dec(budget["lifetime_cap"]) if "lifetime_cap" in budget else None,
        default_grant=_dec(budget.get("default_grant", "10")),
        cache_scope=doc.get("cache_scope", "requester"),
        pricing=Pricing(pricing.get("currency", "CNY"), pricing["per_call_minor"],
                        pricing.get("cached_call_minor", pricing["per_call_minor"]),
                        pricing.get("free_calls_per_period", 0)),
        revenue_shares=tuple(sorted(doc["revenue_shares"].items())),
        requires_source_cosign=access.get("requires_source_cosign", False),
        auto_approve_epsilon=_dec(auto) if auto is not None else None,
        rate_per_second=rate.get("per_second"), rate_burst=rate.get("burst"),
        version=content_hash(doc), document=doc,
    )


def _build_column(name: str, col: dict[str, Any]) -> Column:
    bounds = col.get("bounds")
    cats = col.get("categories")
    return Column(
        name=name, type=col["type"], classification=col.get("classification", "general"),
        categories=tuple(cats) if cats is not None else None,
        bounds=(bounds[0], bounds[1]) if bounds else None,
        candidates=col.get("candidates", 101),
        group_by=col.get("group_by", False), aggregate=col.get("aggregate", False),
        filter=col.get("filter", False), hidden=col.get("hidden", False),
        description=col.get("description", ""),
    )
