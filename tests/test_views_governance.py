"""A view answers to its base's governance (issue 11.3, R-DP-18).

`residents_geo` (tests/fixtures/supply/policies) joins purchased township data onto `residents`:
one view row per resident. It must inherit the base's status, pool and lifetime accounts, owner
and co-signature rule, classification and stricter limits, and visibility of row counts; grants
on the base ending or revoked end the grants on the view. The policy check refuses a view whose
declaration contradicts its base.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.core.derived import effective_policies
from gateway.errors import PolicyInvalid
from gateway.policyfiles import load_policies, shipped_policies_dir
from gateway.runtime.parts import Runtime
from gateway.store import datasets as store_datasets
from tests.fixtures.supply.harness import FIXTURE_POLICIES, Client, open_runtime_async, serving

VIEW_YAML = (FIXTURE_POLICIES / "residents_geo.yaml").read_text(encoding="utf-8")
BANK, BUREAU, PSB, AMR = "demo-bank", "demo-bureau", "demo-source-psb", "demo-source-amr"
JSON = {"Content-Type": "application/json"}


def policy_folder(tmp_path: Path, view_text: str = VIEW_YAML) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    for f in shipped_policies_dir().glob("*"):
        shutil.copyfile(f, folder / f.name)
    shutil.copyfile(FIXTURE_POLICIES / "township_geo.yaml", folder / "township_geo.yaml")
    (folder / "residents_geo.yaml").write_text(view_text, encoding="utf-8")
    return folder


# ---------------------------------------------------------------- the policy check


def test_a_view_declaring_less_than_its_base_is_refused_where_it_says_so(tmp_path: Path) -> None:
    wrong = (VIEW_YAML.replace("owner: psb", "owner: amr")
             .replace("budget: {global_cap: \"100\", pool: county_people}", "budget: {global_cap: \"100\", pool: geo}")
             .replace("income: {type: float, classification: important,", "income: {type: float,")
             .replace("epsilon: {min: \"0.01\", max: \"2.0\"}", "epsilon: {min: \"0.01\", max: \"3.0\"}")
             .replace("access: {requires_source_cosign: true}", "access: {requires_source_cosign: false}"))
    assert wrong.count("amr") == 1 and "pool: geo" in wrong and "max: \"3.0\"" in wrong
    with pytest.raises(PolicyInvalid) as refused:
        load_policies(policy_folder(tmp_path, wrong))
    found = {(Path(p.file).name, p.message) for p in refused.value.problems}
    assert found == {
        ("residents_geo.yaml", "a view is owned by its base's owner 'psb', not 'amr'"),
        ("residents_geo.yaml", "a view spends its base's pool 'county_people', not 'geo'"),
        ("residents_geo.yaml", "income: classified at least as in the base (important)"),
        ("residents_geo.yaml", "epsilon.max cannot exceed the base's 2.0"),
        ("residents_geo.yaml", "the base needs its owner's co-signature, so its views do"),
    }
    assert all(p.line > 1 for p in refused.value.problems), "each problem is located where it is written"


def test_what_a_view_leaves_out_it_inherits(tmp_path: Path) -> None:
    declared = load_policies(policy_folder(tmp_path))
    view, base = effective_policies(declared)["residents_geo"], declared["residents"]
    assert (view.owner, view.pool, view.requires_source_cosign) == ("psb", "county_people", True)
    assert (view.important_epsilon_max, view.important_max_cells) == (base.important_epsilon_max, 400)
    assert view.lifetime_cap == base.lifetime_cap and view.global_cap == 100
    assert view.version != declared["residents_geo"].version, "a change to the base is a new version of the view"


# ---------------------------------------------------------------- the gateway


@pytest.fixture
async def served(tmp_path: Path, demo_data: Path) -> AsyncIterator[tuple[Runtime, Client]]:
    rt = await open_runtime_async(tmp_path, demo_data, with_view=True)
    try:
        async with serving(rt) as client:
            yield rt, client
    finally:
        await asyncio.to_thread(rt.close)


async def call(client: Client, method: str, path: str, who: str, body: Any = None) -> tuple[int, Any]:
    status, _h, answer = await client.call(method, path, who, data=None if body is None else json.dumps(body),
                                           headers=JSON if body is not None else None)
    return status, answer


async def ask(client: Client, sql: str, epsilon: float = 0.2) -> tuple[int, Any]:
    return await call(client, "POST", "/v1/queries", BANK, {"dataset": "residents_geo", "sql": sql,
                                                             "epsilon": epsilon})


async def grant_on_the_view(client: Client) -> str:
    """Apply, be approved by the bureau, and co-signed by the base's owner (inherited rule)."""
    status, app = await call(client, "POST", "/v1/applications", BANK, {
        "dataset": "residents_geo", "purpose": "flood-risk lending, county-wide", "epsilon_per_period": 2})
    assert status == 201, app
    assert app["approvals"]["source"] is None, "the base's co-signature rule was not inherited"
    status, app = await call(client, "POST", f"/v1/applications/{app['id']}/approve", BUREAU, {})
    assert status == 200 and app["status"] == "pending", app
    status, app = await call(client, "POST", f"/v1/applications/{app['id']}/cosign", PSB)
    assert status == 200 and app["status"] == "approved", app
    return str(app["grant_id"])


async def pool_spent(rt: Runtime) -> dict[str, int]:
    rows = await rt.store.read(lambda tx: tx.all("SELECT account, spent_nano FROM budget_accounts "
                                                 "WHERE account LIKE 'pool%'"))
    return {a: int(s) for a, s in rows}


async def test_a_view_answers_to_its_base(served: tuple[Runtime, Client]) -> None:
    rt, client = served
    await grant_on_the_view(client)
    count = "SELECT flood_risk, COUNT(*) AS n FROM residents_geo GROUP BY flood_risk"
    before = await pool_spent(rt)
    status, answer = await ask(client, count)
    assert status == 200, answer
    after = await pool_spent(rt)
    assert after.get("pool:county_people", 0) - before.get("pool:county_people", 0) == 200_000_000
    assert after.get("pool-lifetime:county_people", 0) - before.get("pool-lifetime:county_people", 0) == 200_000_000
    assert "pool:residents_geo" not in after, "the view charged a pool of its own"

    # The base's important limit: income may be asked of residents at epsilon 1.0 at most.
    status, refused = await ask(client, "SELECT AVG(income) AS m FROM residents_geo", 1.5)
    assert status == 422 and "the limit for important data" in refused["detail"], refused

    # Status: the base suspended, the view refuses as a query on the base would.
    assert (await call(client, "POST", "/v1/datasets/residents/suspend", PSB))[0] == 200
    status, refused = await ask(client, count.replace("COUNT(*)", "COUNT(age)"))
    assert status == 409 and refused["code"] == "dataset_suspended", refused
    status, entry = await call(client, "GET", "/v1/datasets/residents_geo", BANK)
    assert entry["status"] == "suspended" and entry["queryable"] is False
    assert (await call(client, "POST", "/v1/datasets/residents/resume", PSB))[0] == 200
    assert (await ask(client, count.replace("COUNT(*)", "COUNT(age)")))[0] == 200

    # Row counts: the base's owner sees them; another department never, whatever the view declares.
    doc = yaml.safe_load(VIEW_YAML) | {"owner": "amr"}
    await rt.store.write(store_datasets.publish_policy, "residents_geo", "amr", "v-amr", doc, "test")
    await rt.refresh()
    assert rt.registry.policies["residents_geo"].owner == "psb"
    status, history = await call(client, "GET", "/v1/datasets/residents_geo/snapshots", PSB)
    assert status == 200 and "rows" in history["snapshots"][0]
    status, _ = await call(client, "GET", "/v1/datasets/residents_geo/snapshots", AMR)
    assert status in (403, 404)
    assert (await call(client, "POST", "/v1/datasets/residents_geo/suspend", AMR))[0] == 404


async def test_grants_on_the_base_ending_end_the_grants_on_its_views(served: tuple[Runtime, Client]) -> None:
    _rt, client = served
    view_grant = await grant_on_the_view(client)
    count = "SELECT COUNT(*) AS n FROM residents_geo"
    assert (await ask(client, count))[0] == 200
    status, grants = await call(client, "GET", "/v1/grants", BANK)
    base_grant = next(g["id"] for g in grants["items"] if g["dataset"] == "residents")
    status, _ = await call(client, "POST", f"/v1/grants/{base_grant}/revoke", BUREAU, {"reason": "contract ended"})
    assert status == 200
    status, refused = await ask(client, count.replace("COUNT(*)", "COUNT(age)"))
    assert status == 403 and refused["code"] == "forbidden", refused
    status, grant = await call(client, "GET", f"/v1/grants/{view_grant}", BANK)
    assert grant["status"] == "ended", grant

    # Withdrawing the base withdraws what is derived from it.
    assert (await call(client, "POST", "/v1/datasets/residents/withdraw", BUREAU))[0] == 200
    status, refused = await ask(client, count)
    assert status == 410 and refused["code"] == "dataset_withdrawn", refused
