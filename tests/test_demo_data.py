"""The synthetic demo county: deterministic, inside the policies' contract, realistically skewed."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from gateway.core.policy import DatasetPolicy
from gateway.data import demo, demo_people
from gateway.policyfiles import load_policies, shipped_policies_dir

POLICIES = load_policies(shipped_policies_dir())
SMALL = 0.02
POLARS_TYPES = {"string": pl.String, "integer": pl.Int64, "float": pl.Float64,
                "boolean": pl.Boolean}
WORKING = ("employed", "self_employed")


@pytest.fixture(scope="module")
def small_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return demo.generate(tmp_path_factory.mktemp("small"), scale=SMALL)


@pytest.fixture(scope="module")
def small(small_paths: dict[str, Path]) -> dict[str, pl.DataFrame]:
    return {name: pl.read_parquet(path) for name, path in small_paths.items()}


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    """The default county at scale 1: about 1.5 s to generate."""
    paths = demo.generate(tmp_path_factory.mktemp("full"))
    return {name: pl.read_parquet(path) for name, path in paths.items()}


def file_hashes(paths: dict[str, Path]) -> dict[str, str]:
    return {name: demo.content_hash(path) for name, path in paths.items()}


def num(values: pl.Series) -> np.ndarray[Any, Any]:
    """A numeric column as numpy, for statistics mypy can type."""
    return values.cast(pl.Float64).to_numpy()


# ---------------------------------------------------------------- files and determinism


def test_writes_exactly_the_four_files_and_no_temporaries(small_paths: dict[str, Path]) -> None:
    out_dir = small_paths["residents"].parent
    assert set(small_paths) == set(demo.DATASETS) == set(POLICIES)
    expected = sorted(f"{name}.parquet" for name in demo.DATASETS)
    assert sorted(path.name for path in out_dir.iterdir()) == expected


def test_same_seed_and_scale_give_identical_bytes(small_paths: dict[str, Path],
                                                  tmp_path: Path) -> None:
    assert file_hashes(demo.generate(tmp_path, scale=SMALL)) == file_hashes(small_paths)


def test_another_seed_changes_every_file(small_paths: dict[str, Path], tmp_path: Path) -> None:
    other = file_hashes(demo.generate(tmp_path, seed=demo.DEFAULT_SEED + 1, scale=SMALL))
    mine = file_hashes(small_paths)
    assert all(other[name] != mine[name] for name in demo.DATASETS)


def test_content_hash_is_the_sha256_of_the_bytes(small_paths: dict[str, Path]) -> None:
    path = small_paths["vehicles"]
    assert demo.content_hash(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_ensure_keeps_existing_files_and_restores_a_missing_one(tmp_path: Path) -> None:
    def stamps(paths: dict[str, Path]) -> dict[str, int]:
        return {name: path.stat().st_mtime_ns for name, path in paths.items()}

    paths = demo.ensure(tmp_path, scale=0.005)
    before, hashes = stamps(paths), file_hashes(paths)
    assert stamps(demo.ensure(tmp_path, scale=0.005)) == before
    paths["vehicles"].unlink()
    assert file_hashes(demo.ensure(tmp_path, scale=0.005)) == hashes


def test_scale_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scale"):
        demo.generate(tmp_path, scale=0)
    assert list(tmp_path.iterdir()) == []


def test_a_tiny_county_still_writes_every_file_with_its_schema(tmp_path: Path) -> None:
    frames = {name: pl.read_parquet(path)
              for name, path in demo.generate(tmp_path, scale=1e-6).items()}
    assert frames["residents"].height == frames["enterprises"].height == 1
    assert all(frames[name].columns == [col.name for col in POLICIES[name].columns]
               for name in demo.DATASETS)


def test_rows_follow_the_scale(small: dict[str, pl.DataFrame]) -> None:
    assert small["residents"].height == round(520_000 * SMALL)
    assert small["enterprises"].height == round(30_000 * SMALL)


# ---------------------------------------------------------------- the policy contract (R-DP-08)


@pytest.mark.parametrize("dataset", sorted(POLICIES))
def test_columns_and_types_are_the_policys(small: dict[str, pl.DataFrame], dataset: str) -> None:
    policy = POLICIES[dataset]
    assert small[dataset].schema == pl.Schema(
        {col.name: POLARS_TYPES[col.type] for col in policy.columns})


def outside_contract(frame: pl.DataFrame, policy: DatasetPolicy) -> list[str]:
    problems = []
    for col in policy.columns:
        values = frame[col.name]
        if values.null_count():
            problems.append(f"{col.name}: nulls")
        if col.categories is not None and not set(values.unique()) <= set(col.categories):
            problems.append(f"{col.name}: {set(values.unique()) - set(col.categories)}")
        if col.bounds is not None:
            low, high = num(values).min(), num(values).max()
            if not col.bounds[0] <= low <= high <= col.bounds[1]:
                problems.append(f"{col.name}: [{low}, {high}] outside {col.bounds}")
    return problems


@pytest.mark.parametrize("dataset", sorted(POLICIES))
def test_every_value_is_inside_declared_categories_and_bounds(
        small: dict[str, pl.DataFrame], full: dict[str, pl.DataFrame], dataset: str) -> None:
    assert outside_contract(small[dataset], POLICIES[dataset]) == []
    assert outside_contract(full[dataset], POLICIES[dataset]) == []


def test_hidden_ids_are_unique_register_numbers(full: dict[str, pl.DataFrame]) -> None:
    residents, enterprises = full["residents"], full["enterprises"]
    assert residents["person_id"].str.contains(r"^P\d{7,}$").all()
    assert residents["household_id"].str.contains(r"^H\d{7,}$").all()
    assert enterprises["enterprise_id"].str.contains(r"^E\d{7,}$").all()
    assert residents["person_id"].is_unique().all()
    assert enterprises["enterprise_id"].is_unique().all()
    assert residents["person_id"][0] == "P0000001"


# ---------------------------------------------------------------- privacy units (R-DP-07)


def test_vehicles_belong_to_adult_residents_at_most_three_each(
        full: dict[str, pl.DataFrame]) -> None:
    owned = full["vehicles"].join(full["residents"], on="person_id", how="left", suffix="_owner")
    assert owned["age"].null_count() == 0 and num(owned["age"]).min() >= 18
    assert (owned["township"] == owned["township_owner"]).all()
    per_person = num(full["vehicles"].group_by("person_id").len()["len"])
    assert per_person.max() == POLICIES["vehicles"].privacy_unit.max_contributions == 3
    assert 0.7 < (per_person == 1).mean() < 0.9


def test_social_insurance_has_at_most_one_row_per_person_and_month(
        full: dict[str, pl.DataFrame]) -> None:
    rows = full["social_insurance"]
    per_person = num(rows.group_by("person_id").len()["len"])
    assert per_person.max() <= POLICIES["social_insurance"].privacy_unit.max_contributions == 12
    assert not rows.select("person_id", "month").is_duplicated().any()
    assert 0.05 < (per_person < 12).mean() < 0.5  # some months are missing


def test_social_insurance_payers_are_working_residents_of_their_industry(
        full: dict[str, pl.DataFrame]) -> None:
    payers = full["social_insurance"].join(full["residents"], on="person_id", how="left")
    assert payers["employment_status"].is_in(WORKING).all()
    assert (payers["employer_industry"] == payers["industry"]).all()
    employed = full["residents"].filter(pl.col("employment_status") == "employed")
    paying = payers.filter(pl.col("employment_status") == "employed")["person_id"].n_unique()
    assert paying > 0.7 * employed.height


# ---------------------------------------------------------------- realism


def test_rows_at_scale_one(full: dict[str, pl.DataFrame]) -> None:
    assert full["residents"].height == demo.ROWS_AT_SCALE_1["residents"] >= 500_000
    assert full["enterprises"].height == demo.ROWS_AT_SCALE_1["enterprises"]
    for dataset in ("vehicles", "social_insurance"):
        assert full[dataset].height == pytest.approx(demo.ROWS_AT_SCALE_1[dataset], rel=0.02)


def test_townships_are_skewed_with_the_county_seat_largest(full: dict[str, pl.DataFrame]) -> None:
    sizes = full["residents"].group_by("township").len().sort("len", descending=True)
    counts = num(sizes["len"])
    assert sizes.height == 20 and sizes["township"][0] == demo_people.SEAT
    assert counts[0] >= 3 * np.median(counts)
    assert counts[-1] >= 5_000  # still big enough to query on its own


def test_households_hold_one_to_six_people_with_an_adult(full: dict[str, pl.DataFrame]) -> None:
    households = full["residents"].group_by("household_id").agg(pl.len(), pl.col("age").max())
    sizes = num(households["len"])
    assert sizes.min() == 1 and sizes.max() == 6 and 2.5 < sizes.mean() < 3.5
    assert num(households["age"]).min() >= 18


def test_age_and_sex_look_like_a_chinese_county(full: dict[str, pl.DataFrame]) -> None:
    age, sex = num(full["residents"]["age"]), full["residents"]["sex"]
    assert 0.12 < (age < 15).mean() < 0.25 and 0.10 < (age >= 65).mean() < 0.25
    assert 35 <= np.median(age) <= 50 and age.max() > 95
    assert 0.49 < (sex == "M").mean() < 0.53  # type: ignore[operator]


def test_industry_is_z_exactly_when_not_working(full: dict[str, pl.DataFrame]) -> None:
    residents = full["residents"]
    assert ((residents["industry"] == "Z") == ~residents["employment_status"].is_in(WORKING)).all()
    assert residents.filter(pl.col("age") < 6)["employment_status"].unique().to_list() == ["other"]


def test_income_is_zero_for_children_and_students(full: dict[str, pl.DataFrame]) -> None:
    dependants = full["residents"].filter(
        (pl.col("age") < 16) | (pl.col("employment_status") == "student"))
    assert dependants.height > 50_000 and (dependants["income"] == 0).all()


def test_income_has_a_long_tail_and_follows_education(full: dict[str, pl.DataFrame]) -> None:
    workers = full["residents"].filter(pl.col("employment_status").is_in(WORKING))
    income = num(workers["income"])
    assert income.mean() > 1.2 * np.median(income)
    assert np.quantile(income, 0.99) > 4 * np.median(income)
    assert (income > 500_000).sum() >= 100
    medians = dict(workers.group_by("education").agg(pl.col("income").median()).iter_rows())
    ladder = ("none", "junior_secondary", "bachelor", "postgraduate")
    assert [medians[level] for level in ladder] == sorted(medians[level] for level in ladder)


def test_enterprises_are_mostly_small_and_money_follows_size(full: dict[str, pl.DataFrame]) -> None:
    firms = full["enterprises"]
    employees = num(firms["employees"])
    assert np.median(employees) <= 10 and employees.max() >= 1_000
    spearman = firms.select(size=pl.corr("employees", "revenue", method="spearman"),
                            tax=pl.corr("revenue", "tax_paid", method="spearman"))
    assert spearman["size"].item() > 0.5 and spearman["tax"].item() > 0.5
    common = firms.group_by("industry").len().sort("len", descending=True)["industry"][:6]
    assert {"C", "F", "H", "O"} <= set(common)
    assert np.median(num(firms["year_founded"])) >= 2010
    assert firms["credit_rating"].n_unique() == 7
