"""A small credit-risk table by township, from the demo county, with the interval of every figure.

    pip install 'county-gateway-client[polars]'      # from this repository: pip install 'clients/python[polars]'
    make demo                                         # in another terminal: the demo county on :8080
    python examples/credit_risk_by_township.py --credentials-file state/demo/demo-credentials.json

Per township: working-age adults, their mean and median income, the share of them unemployed,
and the registered vehicles per 100 adults with their mean value — the figures a lender reads
beside an applicant's own file. Three DP queries on two datasets; each is previewed first (cost,
accuracy, whether the budget allows it), then run. Running the script again in the same month
answers from the stored releases: no epsilon, the cached price.

The client needs grants on `residents` and `vehicles`: in the demo county that is `demo-insurer`
(the default here). With a client that lacks the vehicles grant (`--client-id demo-bank`), the
vehicle columns are left out and the script says why.

Flags, or the environment: --credentials-file (GATEWAY_CREDENTIALS_FILE), --client-id
(GATEWAY_CLIENT_ID), --url (GATEWAY_URL, overrides the file's base_url). --dry-run previews only.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

import polars as pl
from gateway_client import Answer, Client, Forbidden, GatewayError


@dataclass(frozen=True)
class Question:
    name: str
    dataset: str
    sql: str
    epsilon: float


WORKING_AGE = "age BETWEEN 18 AND 65"
QUESTIONS = (
    Question("incomes", "residents",
             "SELECT township, COUNT(*) AS adults, AVG(income) AS mean_income, MEDIAN(income) AS median_income "
             f"FROM residents WHERE {WORKING_AGE} GROUP BY township", 1.0),
    Question("unemployment", "residents",
             "SELECT township, COUNT(*) AS unemployed FROM residents "
             f"WHERE {WORKING_AGE} AND employment_status = 'unemployed' GROUP BY township", 0.5),
    Question("vehicles", "vehicles",
             "SELECT township, COUNT(*) AS vehicles, AVG(value) AS mean_vehicle_value FROM vehicles GROUP BY township",
             0.5),
)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with Client.from_credentials_file(args.credentials_file, args.client_id, base_url=args.url) as gw:
        questions = previewed(gw, QUESTIONS)
        if args.dry_run or not questions:
            return 0 if questions else 1
        answers = {q.name: gw.query(q.dataset, q.sql, epsilon=q.epsilon) for q in questions}
    for q in questions:
        a = answers[q.name]
        print(f"{q.name}: epsilon spent {a.epsilon_spent:g}{' (cached)' if a.cached else ''}, "
              f"price {a.usage['price_minor'] if a.usage else '?'} minor units", file=sys.stderr)
    table = credit_risk_table(answers)
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, tbl_formatting="NOTHING",
                   tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True, tbl_hide_dtype_separator=True,
                   fmt_str_lengths=40, tbl_cell_alignment="RIGHT"):
        print(table)
    print("\nEach [lo, hi] is a 95% interval for a released figure; a ratio of two released figures is bounded\n"
          "by their intervals together (both hold with at least 90%). Medians carry no interval.")
    return 0


def previewed(gw: Client, questions: tuple[Question, ...]) -> list[Question]:
    """The questions the budget allows, after showing what each will cost (a preview spends nothing)."""
    kept: list[Question] = []
    for q in questions:
        try:
            found = gw.preview(q.dataset, q.sql, epsilon=q.epsilon)
        except Forbidden as exc:
            print(f"{q.name}: left out, {exc.detail} (apply for a grant on {q.dataset})", file=sys.stderr)
            continue
        price = found["price"]
        print(f"{q.name}: epsilon {found['epsilon']:g} of {found['budget']['epsilon_remaining']:g} left on "
              f"{q.dataset}, price {price['price_minor']} {price['currency']} minor units", file=sys.stderr)
        if not found["would_fit"]:
            print(f"{q.name}: the budget on {q.dataset} would not allow it this month", file=sys.stderr)
            return []
        kept.append(q)
    if not any(q.name == "incomes" for q in kept):
        print("cannot build the table without the incomes question", file=sys.stderr)
        return []
    return kept


def credit_risk_table(answers: dict[str, Answer]) -> pl.DataFrame:
    """One row per township: released figures with their intervals, and ratios bounded by them."""
    table = answers["incomes"].to_polars(intervals="bounds")
    if "unemployment" in answers:
        table = table.join(answers["unemployment"].to_polars(intervals="bounds"), on="township", how="left")
        table = with_ratio(table, "unemployed", "adults", "unemployed_pct", per=100)
    if "vehicles" in answers:
        table = table.join(answers["vehicles"].to_polars(intervals="bounds"), on="township", how="left")
        table = with_ratio(table, "vehicles", "adults", "vehicles_per_100", per=100)
    shown = [pl.col("township"), pl.col("adults"), interval("mean_income", 0), pl.col("median_income").cast(pl.Int64)]
    if "unemployed_pct" in table.columns:
        shown.append(interval("unemployed_pct", 1))
    if "vehicles_per_100" in table.columns:
        shown += [interval("vehicles_per_100", 1), interval("mean_vehicle_value", 0)]
    order = "unemployed_pct" if "unemployed_pct" in table.columns else "mean_income"
    return table.sort(order, descending=order == "unemployed_pct").select(shown)


def with_ratio(table: pl.DataFrame, top: str, bottom: str, name: str, per: float) -> pl.DataFrame:
    """`per * top / bottom`, and the widest ratio the two intervals allow (counts are never below 0 or 1)."""
    low_top = pl.max_horizontal(pl.col(f"{top}_lo"), pl.lit(0.0))
    low_bottom = pl.max_horizontal(pl.col(f"{bottom}_lo"), pl.lit(1.0))
    return table.with_columns(
        (per * pl.col(top) / pl.max_horizontal(pl.col(bottom), pl.lit(1))).alias(name),
        (per * low_top / pl.col(f"{bottom}_hi")).alias(f"{name}_lo"),
        (per * pl.col(f"{top}_hi") / low_bottom).alias(f"{name}_hi"),
    )


def interval(column: str, digits: int) -> pl.Expr:
    """A value and its interval as one column of text: `31585 [28245, 34925]`.

    Every figure here is a count, an amount or a ratio of them, never below zero: an interval
    reaching below zero is cut there, which keeps its coverage (post-processing, no cost)."""
    def text(expr: pl.Expr) -> pl.Expr:
        return expr.clip(lower_bound=0).round(digits).cast(pl.Int64 if digits == 0 else pl.Float64).cast(pl.Utf8)
    return pl.format("{} [{}, {}]", text(pl.col(column)), text(pl.col(f"{column}_lo")),
                     text(pl.col(f"{column}_hi"))).alias(column)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--credentials-file", default=os.environ.get("GATEWAY_CREDENTIALS_FILE",
                                                                     "state/demo/demo-credentials.json"))
    parser.add_argument("--client-id", default=os.environ.get("GATEWAY_CLIENT_ID", "demo-insurer"))
    parser.add_argument("--url", default=os.environ.get("GATEWAY_URL"), help="overrides the file's base_url")
    parser.add_argument("--dry-run", action="store_true", help="preview the cost only; spend nothing")
    return parser.parse_args(argv)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GatewayError as exc:
        print(f"credit_risk_by_township: {exc}", file=sys.stderr)
        sys.exit(1)
