"""The demo county's people and firms: who lives where, their age, schooling, work and income,
and the vehicles, insurance months and enterprises drawn from them (see `data.demo` for the files)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from gateway.core.policy import DatasetPolicy

SEAT = "Chengguan"  # the county seat: a quarter of the people and the urban economy
_SEAT_SHARE, _ZIPF_EXPONENT = 0.25, 0.5
HOUSEHOLD_SIZES = (0.16, 0.27, 0.22, 0.18, 0.11, 0.06)  # 1..6 persons
# Per five-year band 0-4 ... 100-104, then 105-110: the 1960s-70s bulge, few recent births.
_AGE_BANDS = (4.0, 5.5, 6.0, 5.5, 5.0, 5.5, 7.0, 7.0, 6.0, 7.0, 8.5, 8.5, 6.5, 6.0, 4.5, 3.0,
              2.0, 1.0, 0.4, 0.1, 0.02, 0.005)
_EDUCATION = ("none", "primary", "junior_secondary", "senior_secondary", "vocational",
              "college", "bachelor", "postgraduate")
_EDUCATION_BY_AGE = (  # (from age, weights in _EDUCATION order)
    (0, (1, 0, 0, 0, 0, 0, 0, 0)),
    (7, (0, 1, 0, 0, 0, 0, 0, 0)),
    (13, (0, 0, 1, 0, 0, 0, 0, 0)),
    (16, (0, 0, 0.2, 0.5, 0.3, 0, 0, 0)),
    (19, (0.005, 0.03, 0.25, 0.17, 0.2, 0.2, 0.145, 0)),
    (23, (0.01, 0.05, 0.30, 0.17, 0.15, 0.15, 0.15, 0.02)),
    (35, (0.02, 0.12, 0.42, 0.16, 0.10, 0.10, 0.07, 0.01)),
    (50, (0.05, 0.28, 0.43, 0.14, 0.04, 0.04, 0.02, 0)),
    (65, (0.25, 0.45, 0.20, 0.06, 0.02, 0.015, 0.015, 0)),
)
_STATUS = ("employed", "self_employed", "unemployed", "retired", "student", "other")
_STATUS_BY_AGE = (  # (from age, women's weights, men's weights) in _STATUS order
    (0, (0, 0, 0, 0, 0, 1), (0, 0, 0, 0, 0, 1)),
    (6, (0, 0, 0, 0, 1, 0), (0, 0, 0, 0, 1, 0)),
    (16, (0.07, 0.02, 0.03, 0, 0.86, 0.02), (0.09, 0.02, 0.03, 0, 0.84, 0.02)),
    (19, (0.30, 0.07, 0.08, 0, 0.47, 0.08), (0.34, 0.09, 0.08, 0, 0.43, 0.06)),
    (23, (0.52, 0.22, 0.05, 0, 0.01, 0.20), (0.60, 0.26, 0.05, 0, 0.01, 0.08)),
    (50, (0.22, 0.25, 0.03, 0.35, 0, 0.15), (0.50, 0.32, 0.05, 0.03, 0, 0.10)),
    (60, (0.05, 0.18, 0, 0.65, 0, 0.12), (0.10, 0.25, 0.01, 0.55, 0, 0.09)),
    (70, (0.005, 0.04, 0, 0.80, 0, 0.155), (0.01, 0.06, 0, 0.80, 0, 0.13)),
)
# GB/T 4754-2017 sections: C manufacturing, E construction, F trade, H catering, O services.
_WAGE_INDUSTRY = dict(A=4, B=1, C=25, D=1.5, E=12, F=10, G=5, H=6, I=2, J=1.5, K=2, L=2, M=1,
                      N=1.5, O=5, P=7, Q=5, R=1, S=8)
_OWN_ACCOUNT_INDUSTRY = dict(A=55, C=3, E=5, F=20, G=5, H=8, I=0.5, L=0.5, O=4, R=0.5)
_ENTERPRISE_INDUSTRY = dict(A=6, B=1, C=18, D=1, E=8, F=30, G=5, H=12, I=2, J=0.5, K=2, L=5,
                            M=2, N=1, O=8, P=1, Q=1, R=1, S=0.5)
_INDUSTRY_PAY = dict(A=0.55, B=1.3, C=1.0, D=1.4, E=1.05, F=0.9, G=1.0, H=0.8, I=1.6, J=1.7,
                     K=1.2, L=1.0, M=1.4, N=0.9, O=0.8, P=1.1, Q=1.15, R=0.95, S=1.1, T=1.0)
_EDUCATION_PAY = (0.6, 0.75, 1.0, 1.15, 1.2, 1.45, 1.8, 2.4)
_VEHICLE_TYPES = ("car", "suv", "ev", "van", "truck", "motorcycle", "tricycle")
_VEHICLE_MIX = (  # rural low/mid/high income, then the county seat low/mid/high
    (22, 6, 5, 5, 5, 27, 30), (36, 16, 10, 7, 8, 13, 10), (38, 30, 15, 5, 7, 3, 2),
    (35, 10, 12, 4, 2, 25, 12), (40, 22, 20, 5, 3, 7, 3), (33, 35, 25, 3, 2, 2, 0),
)
_VEHICLE_NEW_PRICE = (120_000, 180_000, 150_000, 90_000, 200_000, 8_000, 6_000)
_VEHICLE_INSURED = (0.90, 0.93, 0.92, 0.80, 0.85, 0.35, 0.20)
_RATINGS = ("AAA", "AA", "A", "BBB", "BB", "B", "C")
_RATINGS_SHARE = (0.03, 0.10, 0.25, 0.30, 0.17, 0.10, 0.05)
# Social insurance: the floor and ceiling of the monthly base, before and after July:
# 60% and 300% of the provincial average wage, which is revised every July.
_BASE_LIMITS = ((3_600.0, 18_000.0), (3_750.0, 18_750.0))


@dataclass(frozen=True)
class Vocabulary:
    """The public categories of the policies, in their declared order."""

    townships: tuple[str, ...]
    industries: tuple[str, ...]  # A..T, then Z for residents not working
    education: tuple[str, ...]
    status: tuple[str, ...]
    ratings: tuple[str, ...]
    vehicle_types: tuple[str, ...]
    months: tuple[str, ...]

    @classmethod
    def of(cls, policies: Mapping[str, DatasetPolicy]) -> Vocabulary:
        def cats(dataset: str, column: str) -> tuple[str, ...]:
            col = policies[dataset].column(column)
            if col is None or col.categories is None:
                raise ValueError(f"policy {dataset}.{column} declares no categories")
            return tuple(str(c) for c in col.categories)

        return cls(cats("residents", "township"), cats("residents", "industry"),
                   cats("residents", "education"), cats("residents", "employment_status"),
                   cats("enterprises", "credit_rating"), cats("vehicles", "vehicle_type"),
                   cats("social_insurance", "month"))


@dataclass(frozen=True)
class People:
    """One chunk of residents as arrays; categorical values are indexes into the vocabulary."""

    first_person: int
    first_household: int
    household: np.ndarray
    township: np.ndarray
    age: np.ndarray
    male: np.ndarray
    education: np.ndarray
    status: np.ndarray
    industry: np.ndarray
    income: np.ndarray


# ---------------------------------------------------------------- public entry points


def person_ids(prefix: str, index: np.ndarray) -> pl.Series:
    """Hidden identifiers such as P0000001 for the 0-based indexes given."""
    return prefix + pl.Series(index + 1, dtype=pl.Int64).cast(pl.String).str.zfill(7)


def _relay(names: Sequence[str], values: Sequence[float], within: Sequence[str]) -> np.ndarray:
    """Values named in our own order, laid out in the policy's category order (0 elsewhere)."""
    out = np.zeros(len(within))
    for name, value in zip(names, values, strict=True):
        out[list(within).index(name)] = value  # a ValueError here: the policy lost a category
    return out


def _named(values: Mapping[str, float], within: Sequence[str]) -> np.ndarray:
    return _relay(list(values), list(values.values()), within)


def _choose(rng: np.random.Generator, weights: Mapping[str, float], within: Sequence[str],
            n: int) -> np.ndarray:
    shares = _named(weights, within)
    return rng.choice(len(within), n, p=shares / shares.sum())


def _labels(categories: Sequence[str], index: np.ndarray) -> pl.Series:
    return pl.Series(categories, dtype=pl.String).gather(index)


def _draw(rng: np.random.Generator, table: np.ndarray, group: np.ndarray) -> np.ndarray:
    """One category per row, from the weights row `table[group]` (rows need not be normed)."""
    cum = np.cumsum(table / table.sum(axis=1, keepdims=True), axis=1)
    cum[cum >= cum[:, -1:] - 1e-9] = 1.0  # trailing zero-weight categories stay unreachable
    return np.asarray((rng.random(group.size)[:, None] >= cum[group]).sum(axis=1))


# ---------------------------------------------------------------- residents


def people_of(rng: np.random.Generator, vocab: Vocabulary, first: int, first_household: int,
            n: int) -> People:
    household, head = _households(rng, n)
    shares = _township_shares(vocab)
    township = rng.choice(shares.size, household[-1] + 1, p=shares)[household]
    # Every household is headed by an adult; the other members are more often children.
    age = np.where(head, rng.choice(111, n, p=_age_shares(20, 1.0)),
                   rng.choice(111, n, p=_age_shares(0, 2.0)))
    male = rng.random(n) < np.select([age < 20, age < 70, age < 85], [0.53, 0.51, 0.45], 0.38)
    education_table = np.vstack([_relay(_EDUCATION, w, vocab.education)
                                 for _, w in _EDUCATION_BY_AGE])
    education = _draw(rng, education_table, _age_band(_EDUCATION_BY_AGE, age))
    status_table = np.vstack([_relay(_STATUS, w, vocab.status)
                              for _, women, men in _STATUS_BY_AGE for w in (women, men)])
    status = _draw(rng, status_table, 2 * _age_band(_STATUS_BY_AGE, age) + male)
    industry = np.select(
        [status == vocab.status.index("employed"), status == vocab.status.index("self_employed")],
        [_choose(rng, _WAGE_INDUSTRY, vocab.industries, n),
         _choose(rng, _OWN_ACCOUNT_INDUSTRY, vocab.industries, n)],
        vocab.industries.index("Z"))
    people = People(first, first_household, household, township, age, male, education, status,
                     industry, np.zeros(n))
    return _with_income(rng, vocab, people)


def _households(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Household index per person and whether the person heads it; the last one is cut to fit."""
    sizes = rng.choice(len(HOUSEHOLD_SIZES), n, p=HOUSEHOLD_SIZES) + 1  # n of them: enough
    ends = np.cumsum(sizes)
    last = int(np.searchsorted(ends, n))
    sizes = sizes[: last + 1]
    sizes[-1] -= ends[last] - n
    household = np.repeat(np.arange(sizes.size), sizes)
    head = np.zeros(n, dtype=bool)
    head[np.cumsum(sizes) - sizes] = True
    return household, head


def _township_shares(vocab: Vocabulary) -> np.ndarray:
    """The seat holds a quarter; the other townships follow a Zipf law in their declared order."""
    zipf = np.arange(1, len(vocab.townships)) ** -_ZIPF_EXPONENT
    others = iter((1 - _SEAT_SHARE) * zipf / zipf.sum())
    return np.array([_SEAT_SHARE if t == SEAT else next(others) for t in vocab.townships])


def _age_shares(youngest: int, youth_weight: float) -> np.ndarray:
    per_year = np.repeat(np.array(_AGE_BANDS[:-1]) / 5, 5)
    per_year = np.append(per_year, np.repeat(_AGE_BANDS[-1] / 6, 6))  # 105..110
    per_year[:20] *= youth_weight
    per_year[:youngest] = 0
    return np.asarray(per_year / per_year.sum())


def _age_band(bands: Sequence[tuple[Any, ...]], age: np.ndarray) -> np.ndarray:
    """The index of the last band starting at or below each age."""
    return np.searchsorted(np.array([band[0] for band in bands]), age, side="right") - 1


def _with_income(rng: np.random.Generator, vocab: Vocabulary, p: People) -> People:
    """Annual income: work pay with a Pareto tail, pensions, benefits; 0 for children, students."""
    n = p.age.size
    status = {name: p.status == vocab.status.index(name) for name in vocab.status}
    employed = status["employed"]
    seat = p.township == vocab.townships.index(SEAT)
    shares = _township_shares(vocab)
    # The seat pays best; elsewhere the bigger the township, the better the pay.
    town_pay = np.where(seat, 1.25, 0.85 + 0.15 * shares[p.township]
                        / np.delete(shares, vocab.townships.index(SEAT)).max())
    education_pay = _relay(_EDUCATION, _EDUCATION_PAY, vocab.education)[p.education]
    # Pay is computed for everyone and kept for workers; the clip spares Z a log(0).
    log_median = (np.log(np.where(employed, 42_000, 36_000) * education_pay * town_pay
                         * _named(_INDUSTRY_PAY, vocab.industries)[p.industry].clip(0.1))
                  - 0.5 * ((p.age - 42) / 22) ** 2)
    work = np.exp(log_median + np.where(employed, 0.5, 0.8) * rng.standard_normal(n))
    rich = rng.random(n) < np.where(employed, 0.015, 0.03) * education_pay
    work = np.where(rich, np.maximum(work, 120_000 * (1 + rng.pareto(1.7, n))), work)
    urban_pension = rng.random(n) < np.where(seat, 0.7, 0.35)
    pension = np.where(urban_pension, rng.lognormal(np.log(36_000), 0.35, n),
                       rng.lognormal(np.log(2_800), 0.3, n))
    odd_jobs = np.where(rng.random(n) < 0.5, 0, rng.lognormal(np.log(8_000), 0.8, n))
    income = np.select(
        [employed | status["self_employed"], status["retired"], status["unemployed"],
         status["other"] & (p.age >= 16)],
        [work, pension, odd_jobs, np.where(rng.random(n) < 0.4, odd_jobs, 0)], 0.0)
    return replace(p, income=np.round(income))  # clipped to the policy's bounds when written


def residents(people: People, ids: pl.Series, vocab: Vocabulary) -> pl.DataFrame:
    return pl.DataFrame({
        "person_id": ids,
        "household_id": person_ids("H", people.first_household + people.household),
        "township": _labels(vocab.townships, people.township),
        "age": people.age,
        "sex": _labels(("F", "M"), people.male.astype(np.int64)),
        "education": _labels(vocab.education, people.education),
        "industry": _labels(vocab.industries, people.industry),
        "employment_status": _labels(vocab.status, people.status),
        "income": people.income,
    })


# ---------------------------------------------------------------- vehicles, social insurance


def vehicles(rng: np.random.Generator, people: People, ids: pl.Series,
              vocab: Vocabulary) -> pl.DataFrame:
    """Adults own vehicles the more the richer they are; an owner has one to three."""
    n = people.age.size
    p_own = 0.06 + 0.5 / (1 + np.exp(-1.4 * (np.log1p(people.income) - np.log(45_000))))
    p_own *= np.where(people.age > 75, 0.4, 1.0)
    owners = np.flatnonzero((people.age >= 18) & (rng.random(n) < p_own))
    extra = rng.random(owners.size)
    owner = np.repeat(owners, 1 + (extra < 0.2) + (extra < 0.05))
    income = people.income[owner]
    seat = people.township[owner] == vocab.townships.index(SEAT)
    tier = np.searchsorted([30_000, 100_000], income, side="right")
    mix = np.vstack([_relay(_VEHICLE_TYPES, row, vocab.vehicle_types) for row in _VEHICLE_MIX])
    kind = _draw(rng, mix, 3 * seat + tier)
    ev = kind == vocab.vehicle_types.index("ev")
    age = np.floor(rng.exponential(np.where(ev, 2.5, 6.5)))
    price = (_relay(_VEHICLE_TYPES, _VEHICLE_NEW_PRICE, vocab.vehicle_types)[kind]
             * rng.lognormal(0, 0.4, owner.size) * np.clip((income / 45_000) ** 0.25, 0.6, 2.5))
    p_insured = _relay(_VEHICLE_TYPES, _VEHICLE_INSURED, vocab.vehicle_types)[kind] - 0.015 * age
    return pl.DataFrame({
        "person_id": ids.gather(owner),
        "township": _labels(vocab.townships, people.township[owner]),
        "vehicle_type": _labels(vocab.vehicle_types, kind),
        "vehicle_age": age.clip(0, 30),
        "value": np.round(price * np.where(ev, 0.80, 0.86) ** age),
        "insured": rng.random(owner.size) < p_insured.clip(0.05, 1),
    })


def social_insurance(rng: np.random.Generator, people: People, ids: pl.Series,
                      vocab: Vocabulary) -> pl.DataFrame:
    """Most employees and some of the self-employed pay; a quarter pay only a run of months."""
    n = people.age.size
    employed = people.status == vocab.status.index("employed")
    own_account = people.status == vocab.status.index("self_employed")
    payers = np.flatnonzero(rng.random(n) < np.select([employed, own_account], [0.86, 0.22], 0.0))
    full_year = rng.random(payers.size) < 0.72
    start = np.where(full_year, 0, rng.integers(0, 12, payers.size))
    length = np.where(full_year, 12, rng.integers(1, 13 - start))
    person = np.repeat(payers, length)
    first_row = np.repeat(np.cumsum(length) - length, length)
    month = np.repeat(start, length) + np.arange(person.size) - first_row
    # Many small employers declare the legal minimum; bases are reset every July.
    declared = people.income[payers] / 12 * rng.lognormal(0, 0.15, payers.size)
    declared = np.repeat(np.where(rng.random(payers.size) < 0.2, 0, declared), length)
    july = month >= 6
    (floor_h1, cap_h1), (floor_h2, cap_h2) = _BASE_LIMITS
    base = np.clip(declared * np.where(july, 1.04, 1.0), np.where(july, floor_h2, floor_h1),
                   np.where(july, cap_h2, cap_h1))
    return pl.DataFrame({
        "person_id": ids.gather(person),
        "month": _labels(vocab.months, month),
        "contribution_base": np.round(base),
        "employer_industry": _labels(vocab.industries, people.industry[person]),
    })


# ---------------------------------------------------------------- enterprises


def enterprises(rng: np.random.Generator, vocab: Vocabulary, n: int) -> pl.DataFrame:
    """Mostly micro firms with a heavy tail; revenue follows size, tax follows revenue."""
    shares = _township_shares(vocab) * np.where(np.array(vocab.townships) == SEAT, 1.6, 1.0)
    industry = _choose(rng, _ENTERPRISE_INDUSTRY, vocab.industries, n)
    micro = np.floor(rng.lognormal(np.log(4), 1.3, n))
    employees = np.where(rng.random(n) < 0.01, np.floor(50 * (1 + rng.pareto(1.1, n))), micro)
    employees = np.where(rng.random(n) < 0.05, 0, employees).clip(0, 5_000)
    productivity = _named(_INDUSTRY_PAY, vocab.industries)[industry]
    revenue = (employees + 0.5) * 300_000 * productivity * rng.lognormal(0, 0.8, n)
    tax_rate = np.where(rng.random(n) < 0.1, 0, rng.lognormal(np.log(0.03), 0.5, n).clip(0, 0.15))
    year = np.clip(2026 - np.floor(rng.exponential(8.0, n)), 1950, 2026)
    capital = np.round(500_000 * (employees + 1) ** 0.6 * rng.lognormal(0, 1.2, n), -4)
    score = (0.6 * np.log1p(employees) + 0.03 * np.minimum(2026 - year, 30)
             + rng.standard_normal(n) - 0.8 * (tax_rate == 0))
    return pl.DataFrame({
        "enterprise_id": person_ids("E", np.arange(n)),
        "township": _labels(vocab.townships, rng.choice(shares.size, n, p=shares / shares.sum())),
        "industry": _labels(vocab.industries, industry),
        "registered_capital": capital,
        "employees": employees,
        "revenue": np.round(revenue),
        "tax_paid": np.round(revenue * tax_rate),
        "year_founded": year,
        "credit_rating": _labels(vocab.ratings, _ratings(score, vocab)),
    })


def _ratings(score: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """AAA for the best 3% of scores, down to C for the worst 5%."""
    thresholds = np.quantile(score, 1 - np.cumsum(_RATINGS_SHARE)[:-1])
    rank = (score[:, None] < thresholds[None, :]).sum(axis=1)
    return np.asarray(np.array([vocab.ratings.index(r) for r in _RATINGS])[rank])
