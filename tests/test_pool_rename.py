"""Renaming a charged pool is refused (issue 19, also seen): its lifetime account must not restart.

Accounts are named by pool; a new name would open fresh monthly and lifetime accounts for the
same people, so the lifetime cap, the one bound that never renews, would start again from zero.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import BIN, Gateway, seed_demo_data


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    state = tmp_path_factory.mktemp("pool-rename")
    seed_demo_data(state, demo_data)
    gateway = Gateway(state).start()
    yield gateway
    gateway.stop()


def document(gw: Gateway, dataset: str) -> dict[str, Any]:
    reply = gw.api("GET", f"/v1/datasets/{dataset}/policy", "demo-bureau")
    assert reply.status == 200
    return reply.json["document"]


def test_a_charged_pool_keeps_its_name(gw: Gateway, tmp_path: Path) -> None:
    spent = gw.api("POST", "/v1/queries", "demo-bank", {"dataset": "residents", "epsilon": 0.5,
                                                         "sql": "SELECT COUNT(*) FROM residents"})
    assert spent.status == 200
    doc = document(gw, "residents")
    doc["budget"]["pool"] = "county_people_2"
    text = yaml.safe_dump(doc, sort_keys=False)
    refused = gw.api("PUT", "/v1/datasets/residents/policy", "demo-bureau", text.encode(),
                     headers={"Content-Type": "application/yaml"})
    assert refused.status == 422 and refused.is_problem, refused.body[:300]
    (problem,) = refused.json["problems"]
    pool_line = next(n for n, line in enumerate(text.splitlines(), start=1) if line.strip().startswith("pool:"))
    assert problem["line"] == pool_line and "budget.pool" in problem["message"]
    assert document(gw, "residents")["budget"]["pool"] == "county_people"

    path = tmp_path / "residents.yaml"
    path.write_text(text)
    applied = subprocess.run([str(BIN / "gateway"), "policy", "apply", str(path), "--state-dir", str(gw.state_dir)],
                             capture_output=True, text=True, timeout=120)
    assert applied.returncode == 1 and f"residents.yaml:{pool_line}:" in applied.stderr, applied.stderr


def test_an_uncharged_pool_may_be_renamed(gw: Gateway) -> None:
    doc = document(gw, "enterprises")
    doc["budget"]["pool"] = "county_firms_renamed"
    reply = gw.api("PUT", "/v1/datasets/enterprises/policy", "demo-bureau", json.dumps(doc).encode())
    assert reply.status == 200 and reply.json["published"] is True, reply.body[:300]
