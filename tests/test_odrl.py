"""Grants exported as ODRL 2.2 Agreements, checked against the ODRL vocabulary's own JSON-LD context.

The context comes from the npm registry (`@digitalbazaar/odrl-context`, installed at test time);
pyld expands the agreement with it. JSON-LD expansion drops every term the context does not
define, so an agreement whose terms all come back as ODRL IRIs is written in ODRL's vocabulary.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from gateway.core.odrl import ODRL_CONTEXT
from tests.support import Gateway

ODRL = "http://www.w3.org/ns/odrl/2/"


@pytest.fixture(scope="module")
def odrl_context(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: the ODRL context comes from the npm registry")
    folder = tmp_path_factory.mktemp("odrl-context")
    done = subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(folder),
                           "@digitalbazaar/odrl-context@1"], capture_output=True, text=True, timeout=300)
    path = folder / "node_modules/@digitalbazaar/odrl-context/contexts/odrl.jsonld"
    if done.returncode != 0 or not path.exists():
        pytest.skip(f"could not install the ODRL context from npm: {done.stderr[-300:]}")
    return dict(json.loads(path.read_text()))


def expanded(doc: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    jsonld = pytest.importorskip("pyld.jsonld")

    def loader(url: str, options: Any = None) -> dict[str, Any]:
        assert url.rstrip("/").replace("https://", "http://") == ODRL_CONTEXT, f"unexpected context {url}"
        return {"contentType": "application/ld+json", "contextUrl": None, "documentUrl": url, "document": context}

    out = jsonld.expand(doc, {"documentLoader": loader})
    assert len(out) == 1
    return dict(out[0])


def first_grant(gw: Gateway, client: str = "demo-bank", dataset: str = "residents") -> dict[str, Any]:
    r = gw.api("GET", "/v1/grants", client)
    assert r.status == 200
    return next(g for g in r.json["items"] if g["dataset"] == dataset)


def test_a_grant_is_an_odrl_agreement_in_odrl_terms(gateway: Gateway, odrl_context: dict[str, Any]) -> None:
    grant = first_grant(gateway)
    r = gateway.api("GET", f"/v1/grants/{grant['grant_id']}/odrl", "demo-bank")
    assert r.status == 200 and (r.header("content-type") or "").startswith("application/ld+json")
    node = expanded(r.json, odrl_context)
    assert node["@type"] == [ODRL + "Agreement"]
    assert node["@id"].endswith(f"/v1/grants/{grant['grant_id']}")
    assert {a["@id"].rsplit("/", 1)[-1] for a in node[ODRL + "assigner"]} == {"psb", "bureau"}
    assert node[ODRL + "assignee"][0]["@id"].endswith("/orgs/lingxi-rural-bank")
    permission = node[ODRL + "permission"][0]
    assert permission[ODRL + "action"] == [{"@id": ODRL + "use"}]
    operands = {c[ODRL + "leftOperand"][0]["@id"] for c in permission[ODRL + "constraint"]}
    assert {ODRL + "purpose", ODRL + "dateTime", ODRL + "elapsedTime"} <= operands
    assert any(o.endswith("#epsilonPerPeriod") for o in operands)
    epsilon = next(c for c in permission[ODRL + "constraint"]
                   if c[ODRL + "leftOperand"][0]["@id"].endswith("#epsilonPerPeriod"))
    assert float(epsilon[ODRL + "rightOperand"][0]["@value"]) == grant["epsilon_per_period"]
    duty = permission[ODRL + "duty"][0]
    assert duty[ODRL + "action"] == [{"@id": ODRL + "compensate"}]
    prohibition = node[ODRL + "prohibition"][0]
    assert prohibition[ODRL + "action"] == [{"@id": ODRL + "distribute"}]


def test_the_source_department_and_the_bureau_read_it_others_get_404(gateway: Gateway) -> None:
    grant = first_grant(gateway)
    path = f"/v1/grants/{grant['grant_id']}/odrl"
    assert gateway.api("GET", path, "demo-source-psb").status == 200
    assert gateway.api("GET", path, "demo-bureau").status == 200
    theirs = gateway.api("GET", path, "demo-insurer")
    missing = gateway.api("GET", "/v1/grants/nope/odrl", "demo-insurer")
    assert theirs.status == missing.status == 404 and theirs.json["detail"] == missing.json["detail"]


def test_a_revoked_grant_is_a_terminated_agreement(fresh_gateway: Gateway) -> None:
    grant = first_grant(fresh_gateway, "demo-insurer", "vehicles")
    path = f"/v1/grants/{grant['grant_id']}/odrl"
    assert fresh_gateway.api("GET", path, "demo-insurer").json["gw:state"] == "active"
    r = fresh_gateway.api("POST", f"/v1/grants/{grant['grant_id']}/revoke", "demo-bureau", {"reason": "test"})
    assert r.status == 200
    assert fresh_gateway.api("GET", path, "demo-insurer").json["gw:state"] == "revoked"
