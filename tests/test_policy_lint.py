"""Policy lint: shipped policies pass; every broken fixture is refused with each problem located.

Each file in tests/fixtures/policies/broken/ carries its expected problems as comment lines
`# expect: LINE:COLUMN: MESSAGE`; a new case is a new file, not a new test (R-IN-06).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.core.policy_parse import parse_policy
from gateway.errors import PolicyInvalid
from gateway.policyfiles import load_policies, load_policy_file, policy_schema, shipped_policies_dir
from tests.support import free_port, seed_demo_data

FIXTURES = Path(__file__).parent / "fixtures" / "policies"
BROKEN = sorted((FIXTURES / "broken").glob("*.yaml"))
GATEWAY = str(Path(sys.executable).parent / "gateway")
EXPECT = re.compile(r"^# expect: (\d+):(\d+): (.+)$", re.MULTILINE)


def expected(path: Path) -> set[tuple[int, int, str]]:
    return {(int(line), int(col), msg) for line, col, msg in EXPECT.findall(path.read_text())}


def problems_of(path: Path) -> list[tuple[int, int, str]]:
    with pytest.raises(PolicyInvalid) as caught:
        load_policy_file(path)
    assert all(p.file == str(path) for p in caught.value.problems)
    return [(p.line, p.column, p.message) for p in caught.value.problems]


def run_gateway(*args: str, env: dict[str, str] | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GATEWAY, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


# ---------------------------------------------------------------- the shipped policies


def test_every_shipped_policy_passes() -> None:
    policies = load_policies(shipped_policies_dir())
    assert sorted(policies) == ["enterprises", "residents", "social_insurance", "vehicles"]
    for policy in policies.values():
        assert len(policy.version) == 64 and policy.queryable


def test_policy_check_of_the_shipped_folder_exits_zero() -> None:
    done = run_gateway("policy", "check", str(shipped_policies_dir()))
    assert done.returncode == 0, done.stderr
    assert sorted(line.split("\t")[1] for line in done.stdout.splitlines()) == [
        "enterprises", "residents", "social_insurance", "vehicles"]


def test_the_minimal_fixture_is_valid_so_each_broken_one_differs_by_its_defect() -> None:
    policy = load_policy_file(FIXTURES / "valid" / "loans.yaml")
    assert policy.privacy_unit.column == "borrower_id" and policy.pool == "loans"
    assert [c.name for c in policy.public_columns] == ["township", "amount"]


def test_the_documented_example_passes() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "policies.md").read_text()
    example = re.search(r"## An example\n\n```yaml\n(.*?)```", docs, re.DOTALL)
    assert example is not None
    policy = parse_policy(example.group(1), "docs/policies.md", policy_schema())
    assert policy.dataset == "loans" and policy.privacy_unit.kind == "identifier"


def test_every_field_of_the_schema_is_documented() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "policies.md").read_text()
    schema = policy_schema()
    fields = set(schema["properties"]) | set(schema["$defs"]["column"]["properties"])
    for block in ("source", "epsilon", "important", "private_keys", "budget", "pricing", "access",
                  "rate_limit"):
        fields |= set(schema["properties"][block]["properties"])
    assert sorted(f for f in fields if f"`{f}`" not in docs) == []


# ---------------------------------------------------------------- broken fixtures


def test_there_is_a_broken_fixture_for_each_kind_of_mistake() -> None:
    names = {p.stem for p in BROKEN}
    assert {"yaml_syntax", "duplicate_key", "alias_anchor", "alias_bomb", "unknown_field",
            "wrong_type", "bounds_reversed", "group_by_without_categories",
            "identifier_not_hidden", "shares_not_summing", "path_parent", "path_url",
            "epsilon_min_over_max", "core_column_not_hidden", "several_errors", "keys_not_text",
            "bounds_not_finite"} <= names
    assert all(expected(p) for p in BROKEN), "every fixture states what it expects"


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_broken_policy_reports_exactly_its_located_problems(path: Path) -> None:
    got = problems_of(path)
    assert len(got) == len(set(got)), f"a problem is reported twice: {got}"
    assert set(got) == expected(path)


def test_one_file_with_many_mistakes_reports_schema_and_semantic_problems_together() -> None:
    got = {msg for _l, _c, msg in problems_of(FIXTURES / "broken" / "several_errors.yaml")}
    assert len(got) == 10
    assert any("unknown field" in m for m in got) and any("minimum" in m for m in got)
    assert any("bounds must be" in m for m in got) and any("basis points" in m for m in got)


def test_a_defect_in_one_part_does_not_hide_the_rules_of_another() -> None:
    text = (FIXTURES / "valid" / "loans.yaml").read_text()
    text = text.replace("max_rows: 1000", "max_rows: lots").replace("[0, 1000]", "[1000, 0]")
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(text, "loans.yaml", policy_schema())
    messages = sorted(p.message for p in caught.value.problems)
    assert messages == ["amount: bounds must be [lower, upper] with lower < upper",
                        "max_rows: 'lots' is not of type 'integer'"]


@pytest.mark.parametrize("path", ["loans.parquet", "credit/2026/loans.parquet", "s3://county/loans.parquet",
                                  "gs://county/loans.parquet", "file:credit/loans.parquet", "a..b/loans.parquet"])
def test_paths_inside_the_data_root_and_object_storage_pass(path: str) -> None:
    # Mirrors gateway/data/connectors/files.py: object-store URLs are read through polars.
    text = (FIXTURES / "valid" / "loans.yaml").read_text().replace("credit/loans.parquet", path)
    assert parse_policy(text, "loans.yaml", policy_schema()).source.get("path") == path


def test_the_alias_bomb_is_refused_without_expanding() -> None:
    # Expanded, the document would hold 9**9 strings; refused, it costs one parse.
    [(line, col, msg)] = problems_of(FIXTURES / "broken" / "alias_bomb.yaml")
    assert (line, col) == (3, 4) and "anchors and aliases" in msg


def test_policies_declaring_one_dataset_twice_are_refused(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        shutil.copyfile(FIXTURES / "valid" / "loans.yaml", tmp_path / name)
    with pytest.raises(PolicyInvalid) as caught:
        load_policies(tmp_path)
    [problem] = caught.value.problems
    assert problem.file.endswith("b.yaml") and "declared twice" in problem.message


def test_an_empty_folder_is_not_a_valid_set_of_policies(tmp_path: Path) -> None:
    with pytest.raises(PolicyInvalid, match="no policy files"):
        load_policies(tmp_path)


# ---------------------------------------------------------------- the command and the server


def test_policy_check_reports_every_problem_of_every_file_and_exits_non_zero() -> None:
    done = run_gateway("policy", "check", str(FIXTURES / "broken"))
    assert done.returncode != 0
    lines = set(done.stderr.splitlines())
    total = 0
    for path in BROKEN:
        for line, col, msg in expected(path):
            assert f"{path}:{line}:{col}: {msg}" in lines
            total += 1
    assert f"{total} problem(s) found" in lines
    assert "Traceback" not in done.stderr


def test_policy_check_of_one_file_exits_non_zero() -> None:
    path = FIXTURES / "broken" / "shares_not_summing.yaml"
    done = run_gateway("policy", "check", str(path))
    assert done.returncode == 1
    assert f"{path}:15:17: revenue_shares must sum to 10000 basis points" in done.stderr


def test_server_refuses_to_start_on_an_invalid_policy(tmp_path: Path, demo_data: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    for name in ("residents.yaml", "vehicles.yaml"):
        shutil.copyfile(shipped_policies_dir() / name, policies / name)
    shutil.copyfile(FIXTURES / "broken" / "bounds_reversed.yaml", policies / "loans.yaml")
    state = tmp_path / "state"
    seed_demo_data(state, demo_data)
    done = run_gateway("serve", "--demo", "--host", "127.0.0.1", "--port", str(free_port()),
                       "--state-dir", str(state), env={"GATEWAY_POLICIES_DIR": str(policies)})
    assert done.returncode != 0
    assert "refusing to start, a policy is invalid" in done.stderr
    assert f"{policies / 'loans.yaml'}:16:13: amount: bounds must be [lower, upper]" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (state / "demo-credentials.json").exists()
