"""A DP answer: the released table, the accuracy of each column, what it cost; as data frames too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas
    import polars

Intervals = Literal["halfwidth", "bounds"] | None


@dataclass(frozen=True)
class Answer:
    """The answer to a query or a product call, as the gateway released it.

    `accuracy` is the gateway's own object: `{"alpha": 0.05, "columns": {"n": 7.4, ...}}`,
    each value the half-width of a (1 - alpha) interval around the released value, or None
    where no such bound exists (quantiles, for instance). `halfwidths` is the inner mapping.
    """

    query_id: str
    dataset: str
    columns: list[str]
    rows: list[list[Any]]
    accuracy: dict[str, Any]
    epsilon_spent: float
    cached: bool
    budget: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    policy_version: str | None = None
    snapshot_id: str | None = None
    #: True when the gateway replayed a stored answer for a repeated Idempotency-Key.
    replayed: bool = False
    #: The Idempotency-Key the call was sent with (None for a stored release read back).
    idempotency_key: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, body: Mapping[str, Any], *, replayed: bool = False,
                  idempotency_key: str | None = None) -> Answer:
        """A query or invoke answer; also a stored release (`GET /v1/queries/{id}`), whose
        table sits under `release` and whose accuracy is a flat mapping."""
        table = body["release"] if isinstance(body.get("release"), dict) else body
        accuracy = body.get("accuracy") or {}
        if "columns" not in accuracy:
            accuracy = {"alpha": accuracy.get("alpha"), "columns": {k: v for k, v in accuracy.items() if k != "alpha"}}
        return cls(
            query_id=str(body["query_id"]), dataset=str(body.get("dataset", "")),
            columns=[str(c) for c in table["columns"]], rows=[list(r) for r in table["rows"]],
            accuracy=dict(accuracy), epsilon_spent=float(body.get("epsilon_spent", 0.0)),
            cached=bool(body.get("cached", False)), budget=body.get("budget"), usage=body.get("usage"),
            policy_version=body.get("policy_version"), snapshot_id=body.get("snapshot_id"),
            replayed=replayed, idempotency_key=idempotency_key, raw=dict(body))

    @property
    def alpha(self) -> float | None:
        """The intervals are (1 - alpha) intervals."""
        value = self.accuracy.get("alpha")
        return float(value) if isinstance(value, int | float) else None

    @property
    def halfwidths(self) -> dict[str, float | None]:
        """Half-width of each released column's interval (None where none exists)."""
        cols = self.accuracy.get("columns") or {}
        return {str(k): (float(v) if isinstance(v, int | float) else None) for k, v in cols.items()}

    def records(self) -> list[dict[str, Any]]:
        """The rows as dictionaries keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def table(self, intervals: Intervals = None) -> tuple[list[str], list[list[Any]]]:
        """Columns and rows, with each released column's interval beside it when asked:
        `intervals="halfwidth"` adds `<col>_halfwidth`; `"bounds"` adds `<col>_lo` and `<col>_hi`."""
        if intervals not in (None, "halfwidth", "bounds"):
            raise ValueError('intervals must be None, "halfwidth" or "bounds"')
        widths = self.halfwidths
        names: list[str] = []
        for col in self.columns:
            names.append(col)
            if intervals and col in widths:
                names.extend([f"{col}_halfwidth"] if intervals == "halfwidth" else [f"{col}_lo", f"{col}_hi"])
        rows = [self._with_intervals(row, widths, intervals) for row in self.rows]
        return names, rows

    def _with_intervals(self, row: list[Any], widths: dict[str, float | None], intervals: Intervals) -> list[Any]:
        out: list[Any] = []
        for col, value in zip(self.columns, row, strict=True):
            out.append(value)
            if not intervals or col not in widths:
                continue
            width = widths[col]
            if intervals == "halfwidth":
                out.append(width)
            elif width is None or not isinstance(value, int | float):
                out.extend([None, None])
            else:
                out.extend([value - width, value + width])
        return out

    def to_polars(self, intervals: Intervals = None) -> polars.DataFrame:
        """A polars DataFrame (needs the `polars` extra); see `table` for `intervals`."""
        try:
            import polars as pl
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("to_polars needs polars: pip install 'county-gateway-client[polars]'") from exc
        names, rows = self.table(intervals)
        data = {name: [row[i] for row in rows] for i, name in enumerate(names)}
        interval_cols = set(names) - set(self.columns)
        schema_overrides = {name: pl.Float64 for name in interval_cols}
        return pl.DataFrame(data, schema_overrides=schema_overrides, strict=False)

    def to_pandas(self, intervals: Intervals = None) -> pandas.DataFrame:
        """A pandas DataFrame (needs the `pandas` extra); see `table` for `intervals`."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("to_pandas needs pandas: pip install 'county-gateway-client[pandas]'") from exc
        names, rows = self.table(intervals)
        return pd.DataFrame(rows, columns=names)
