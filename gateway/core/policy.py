"""Dataset policies: the model, built from a document that `policy_parse` has validated.

A policy says what may be asked of one dataset, at what privacy cost and price. It is data:
read from YAML with every problem located (`policy_yaml`), checked against the JSON Schema in
`policies/` and against the rules a schema cannot say (`policy_rules`), then built here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from gateway.core.canonical import canonical_json

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
    # Delta caps beside the epsilon ones (R-DP-17); none where the policy releases no private keys.
    delta_per_grant: Decimal = Decimal(0)
    delta_global_cap: Decimal | None = None
    delta_lifetime_cap: Decimal | None = None

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


def decimal_of(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the schema's pattern excludes it
        raise ValueError(text) from None


def content_hash(doc: Mapping[str, Any]) -> str:
    canonical = canonical_json(doc)
    return hashlib.sha256(canonical.encode()).hexdigest()


def build_policy(doc: dict[str, Any]) -> DatasetPolicy:
    unit = doc["privacy_unit"]
    imp = doc.get("important", {})
    pk = doc.get("private_keys", {"allowed": False})
    pricing = doc["pricing"]
    price = pricing.get("price_minor", pricing.get("per_call_minor", 0))  # per_call_minor: the older name
    access = doc.get("access", {})
    rate = doc.get("rate_limit", {})
    budget = doc["budget"]
    auto = access.get("auto_approve_epsilon")
    delta = {k: decimal_of(v) for k, v in budget.get("delta", {}).items()}
    return DatasetPolicy(
        dataset=doc["dataset"], title=doc["title"], description=doc.get("description", ""),
        owner=doc["owner"], classification=doc["classification"],
        source=Source(doc["source"]["kind"], tuple(sorted((k, v) for k, v in doc["source"].items() if k != "kind"))),
        privacy_unit=PrivacyUnit(unit["kind"], unit.get("column"), unit.get("max_contributions", 1),
                                 unit.get("attestation", "")),
        max_rows=doc["max_rows"],
        columns=tuple(_build_column(n, c) for n, c in doc["columns"].items()),
        aggregates=frozenset(doc["aggregates"]),
        epsilon_min=decimal_of(doc["epsilon"]["min"]), epsilon_max=decimal_of(doc["epsilon"]["max"]),
        important_epsilon_max=decimal_of(imp["epsilon_max"]) if "epsilon_max" in imp else None,
        important_max_cells=imp.get("max_cells"), important_group_by=imp.get("group_by", True),
        private_keys_allowed=pk["allowed"], private_keys_delta=decimal_of(pk.get("delta", "0")),
        max_cells=doc.get("max_cells", 1000),
        global_cap=decimal_of(budget["global_cap"]), pool=budget.get("pool", doc["dataset"]),
        lifetime_cap=decimal_of(budget["lifetime_cap"]) if "lifetime_cap" in budget else None,
        default_grant=decimal_of(budget.get("default_grant", "10")),
        cache_scope=doc.get("cache_scope", "requester"),
        pricing=Pricing(pricing.get("currency", "CNY"), price,
                        pricing.get("cached_call_minor", price),
                        pricing.get("free_calls_per_period", 0)),
        revenue_shares=tuple(sorted(doc["revenue_shares"].items())),
        requires_source_cosign=access.get("requires_source_cosign", False),
        auto_approve_epsilon=decimal_of(auto) if auto is not None else None,
        rate_per_second=rate.get("per_second"), rate_burst=rate.get("burst"),
        version=content_hash(doc), document=doc,
        delta_per_grant=delta.get("per_grant", Decimal(0)), delta_global_cap=delta.get("global_cap"),
        delta_lifetime_cap=delta.get("lifetime_cap"),
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
