"""The synthetic demo county: deterministic, inside the policies' contract, realistically skewed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from gateway.core.policy import DatasetPolicy
from gateway.data import demo
from gateway.policyfiles import load_policies, shipped_policies_dir

POLICIES = load_policies(shipped_policies_dir())
SMALL = 0.02
POLARS_TYPES = {"string": pl.String, "integer": pl.Int64, "float": pl.Float64,
                "boolean": pl.Boolean}
WORKING = ("employed", "self_employed")


def read_all(paths: dict[str, Path]) -> dict[str, pl.DataFrame]:
    return {name: pl.read_parquet(path) for name, path in paths.items()}


@pytest.fixture(scope="module")
def small_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return demo.generate(tmp_path_factory.mktemp("small"), scale=SMALL)


@pytest.fixture(scope="module")
def small(small_paths: dict[str, Path]) -> dict[str, pl.DataFrame]:
    return read_all(small_paths)


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    return read_all(demo.generate(tmp_path_factory.mktemp("full")))


def file_hashes(paths: dict[str, Path]) -> dict[str, str]:
    return {name: demo.content_hash(path) for name, path in paths.items()}


# ---------------------------------------------------------------- files and determinism


def test_writes_exactly_the_four_files_and_no_temporaries(small_paths: dict[str, Path]) -> None:
    out_dir = next(iter(small_paths.values())).parent
    assert set(small_paths) == set(demo.DATASETS) == set(POLICIES)
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(f"{n}.parquet" for n in demo.DATASETS)


def test_same_seed_and_scale_give_identical_bytes(small_paths: dict[str, Path],
                                                  tmp_path: Path) -> None:
    again = demo.generate(tmp_path, scale=SMALL)
    assert file_hashes(again) == file_hashes(small_paths)


def test_another_seed_changes_every_file(small_paths: dict[str, Path], tmp_path: Path) -> None:
    other = file_hashes(demo.generate(tmp_path, seed=demo.DEFAULT_SEED + 1, scale=SMALL))
    mine = file_hashes(small_paths)
    assert all(other[name] != mine[name] for name in demo.DATASETS)


def test_content_hash_is_the_sha256_of_the_bytes(small_paths: dict[str, Path]) -> None:
    path = small_paths["vehicles"]
    assert demo.content_hash(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_ensure_keeps_existing_files_and_restores_a_missing_one(tmp_path: Path) -> None:
    paths = demo.ensure(tmp_path, scale=0.005)
    before = {name: path.stat().st_mtime_ns for name, path in paths.items()}
    hashes = file_hashes(paths)
    assert {n: p.stat().st_mtime_ns for n, p in demo.ensure(tmp_path, scale=0.005).items()} == before
    paths["vehicles"].unlink()
    assert file_hashes(demo.ensure(tmp_path, scale=0.005)) == hashes


def test_scale_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scale"):
        demo.generate(tmp_path, scale=0)
    assert list(tmp_path.iterdir()) == []


def test_rows_follow_the_scale(small: dict[str, pl.DataFrame]) -> None:
    assert small["residents"].height == round(520_000 * SMALL)
    assert small["enterprises"].height == round(30_000 * SMALL)


# ---------------------------------------------------------------- the policy contract (R-DP-08)


@pytest.mark.parametrize("dataset", sorted(POLICIES))
def test_columns_and_types_are_the_policys(small: dict[str, pl.DataFrame], dataset: str) -> None:
    policy = POLICIES[dataset]
    assert small[dataset].schema == pl.Schema(
        {col.name: POLARS_TYPES[col.type] for col in policy.columns})


def _outside_contract(frame: pl.DataFrame, policy: DatasetPolicy) -> list[str]:
    problems = []
    for col in policy.columns:
        values = frame[col.name]
        if values.null_count():
            problems.append(f"{col.name}: nulls")
        if col.categories is not None and not set(values.unique()) <= set(col.categories):
            problems.append(f"{col.name}: {set(values.unique()) - set(col.categories)}")
        if col.bounds is not None and not col.bounds[0] <= values.min() <= values.max() <= col.bounds[1]:  # type: ignore[operator]
            problems.append(f"{col.name}: [{values.min()}, {values.max()}] outside {col.bounds}")
    return problems


@pytest.mark.parametrize("dataset", sorted(POLICIES))
def test_every_value_is_inside_declared_categories_and_bounds(
        small: dict[str, pl.DataFrame], full: dict[str, pl.DataFrame], dataset: str) -> None:
    assert _outside_contract(small[dataset], POLICIES[dataset]) == []
    assert _outside_contract(full[dataset], POLICIES[dataset]) == []


def test_hidden_ids_are_unique_register_numbers(full: dict[str, pl.DataFrame]) -> None:
    residents, enterprises = full["residents"], full["enterprises"]
    assert residents["person_id"].str.contains(r"^P\d{7,}$").all()
    assert residents["household_id"].str.contains(r"^H\d{7,}$").all()
    assert enterprises["enterprise_id"].str.contains(r"^E\d{7,}$").all()
    assert residents["person_id"].is_unique().all() and enterprises["enterprise_id"].is_unique().all()
    assert residents["person_id"][0] == "P0000001"


# ---------------------------------------------------------------- privacy units (R-DP-07)


def test_vehicles_belong_to_adult_residents_and_at_most_three_each(
        full: dict[str, pl.DataFrame]) -> None:
    owners = full["vehicles"].join(full["residents"], on="person_id", how="left", suffix="_owner")
    assert owners["age"].null_count() == 0 and owners["age"].min() >= 18  # type: ignore[operator]
    assert (owners["township"] == owners["township_owner"]).all()
    per_person = full["vehicles"].group_by("person_id").len()["len"]
    assert per_person.max() == POLICIES["vehicles"].privacy_unit.max_contributions == 3
    assert per_person.min() == 1


def test_social_insurance_is_at_most_one_row_per_person_and_month(
        full: dict[str, pl.DataFrame]) -> None:
    rows = full["social_insurance"]
    per_person = rows.group_by("person_id").len()["len"]
    assert per_person.max() <= POLICIES["social_insurance"].privacy_unit.max_contributions == 12
    assert not rows.select("person_id", "month").is_duplicated().any()
    assert 0.05 < (per_person < 12).mean() < 0.5  # type: ignore[operator]  # some months missing


def test_social_insurance_payers_are_working_residents_of_their_industry(
        full: dict[str, pl.DataFrame]) -> None:
    payers = full["social_insurance"].join(full["residents"], on="person_id", how="left")
    assert payers["employment_status"].is_in(WORKING).all()
    assert (payers["employer_industry"] == payers["industry"]).all()
    assert payers.filter(pl.col("employment_status") == "employed")["person_id"].n_unique() > (
        0.7 * full["residents"].filter(pl.col("employment_status") == "employed").height)


# ---------------------------------------------------------------- realism


def test_residents_at_scale_one(full: dict[str, pl.DataFrame]) -> None:
    assert full["residents"].height == demo.ROWS_AT_SCALE_1["residents"] >= 500_000
    assert full["enterprises"].height == demo.ROWS_AT_SCALE_1["enterprises"]
    for dataset in ("vehicles", "social_insurance"):
        assert full[dataset].height == pytest.approx(demo.ROWS_AT_SCALE_1[dataset], rel=0.02)


def test_townships_are_skewed_with_the_county_seat_largest(full: dict[str, pl.DataFrame]) -> None:
    sizes = full["residents"].group_by("township").len().sort("len", descending=True)
    assert sizes.height == 20 and sizes["township"][0] == demo.SEAT
    assert sizes["len"][0] >= 3 * sizes["len"].median()  # type: ignore[operator]
    assert sizes["len"][-1] >= 1_000  # every township is big enough to be queried


def test_households_hold_one_to_six_people(full: dict[str, pl.DataFrame]) -> None:
    sizes = full["residents"].group_by("household_id").agg(pl.len(), pl.col("age").max())
    assert 1 <= sizes["len"].min() and sizes["len"].max() <= 6  # type: ignore[operator]
    assert sizes["age"].min() >= 18  # type: ignore[operator]  # every household has an adult
    assert 2.5 < sizes["len"].mean() < 3.5  # type: ignore[operator]


def test_age_and_sex_look_like_a_chinese_county(full: dict[str, pl.DataFrame]) -> None:
    shares = full["residents"].select(
        children=(pl.col("age") < 15).mean(), elderly=(pl.col("age") >= 65).mean(),
        men=(pl.col("sex") == "M").mean(), median=pl.col("age").median())
    assert 0.12 < shares["children"].item() < 0.25 and 0.10 < shares["elderly"].item() < 0.25
    assert 0.49 < shares["men"].item() < 0.53 and 35 <= shares["median"].item() <= 50


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
    income = workers["income"]
    assert income.mean() > 1.2 * income.median()  # type: ignore[operator]
    assert income.quantile(0.99) > 4 * income.median()  # type: ignore[operator]
    assert (income > 500_000).sum() >= 100
    medians = dict(workers.group_by("education").agg(pl.col("income").median()).iter_rows())
    assert medians["none"] < medians["junior_secondary"] < medians["bachelor"] < medians["postgraduate"]


def test_enterprises_are_mostly_small_and_money_follows_size(full: dict[str, pl.DataFrame]) -> None:
    firms = full["enterprises"]
    assert firms["employees"].median() <= 10 and firms["employees"].max() >= 1_000  # type: ignore[operator]
    spearman = firms.select(size=pl.corr("employees", "revenue", method="spearman"),
                            tax=pl.corr("revenue", "tax_paid", method="spearman"))
    assert spearman["size"].item() > 0.5 and spearman["tax"].item() > 0.5
    common = firms.group_by("industry").len().sort("len", descending=True)["industry"][:6]
    assert {"C", "F", "H", "O"} <= set(common)
    assert firms["year_founded"].median() >= 2010  # type: ignore[operator]
    assert set(firms["credit_rating"].unique()) == set(POLICIES["enterprises"].column("credit_rating").categories or ())
