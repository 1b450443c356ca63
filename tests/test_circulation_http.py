"""The circulation story over real HTTP: apply, approve, build a product, invoke, suspend, bill.

One gateway for the module; each test leaves the demo datasets usable for the next, except the
last one, which withdraws `vehicles`.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import BIN, FAST_RATES, Gateway, Reply, call, demo_gateway, record_agreement

PRODUCT_SQL = ("SELECT township, COUNT(*) AS n, AVG(income) AS mean_income FROM residents "
               "WHERE age BETWEEN :min_age AND :max_age AND sex = :sex GROUP BY township")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    with demo_gateway(tmp_path_factory.mktemp("circulation"), demo_data, env=FAST_RATES) as gateway:
        yield gateway


class Caller:
    """A client that is not in the demo credentials file: registered over the API."""

    def __init__(self, gw: Gateway, client_id: str, secret: str) -> None:
        self.gw, self.client_id, self.secret = gw, client_id, secret
        self.token = ""

    def login(self) -> Reply:
        r = self.gw.form("/oauth/token", {"grant_type": "client_credentials", "client_id": self.client_id,
                                          "client_secret": self.secret})
        if r.status == 200:
            self.token = r.json["access_token"]
        return r

    def api(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        h = {"Authorization": "Bearer " + self.token, **(headers or {})}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        return call(method, self.gw.base + path, data, h)


def ok(r: Reply, status: int = 200) -> Any:
    assert r.status == status, (r.status, r.body[:500])
    return r.json


def register(gw: Gateway, org_id: str, client_id: str, kind: str = "requester") -> Caller:
    ok(gw.api("POST", "/v1/requesters", "demo-bureau", {"org_id": org_id, "name": org_id.title(), "kind": kind}),
       201)
    made = ok(gw.api("POST", f"/v1/requesters/{org_id}/clients", "demo-bureau", {"client_id": client_id}), 201)
    caller = Caller(gw, client_id, made["client_secret"])
    assert caller.login().status == 200
    return caller


def suspended_refusals(gw: Gateway) -> float:
    text = gw.api("GET", "/metrics", "demo-ops").body.decode()
    series = 'gateway_refusals_total{dataset="residents",reason="dataset_suspended"} '
    return sum(float(line[len(series):]) for line in text.splitlines() if line.startswith(series))


@pytest.fixture(scope="module")
def harbour(gw: Gateway) -> Caller:
    return register(gw, "harbour-bank", "harbour-app")


def test_the_whole_story(gw: Gateway, harbour: Caller) -> None:
    period = ok(gw.api("GET", "/v1/budget", "demo-bank"))["period"]

    # 1. The bank applies; the source co-signs first, then the bureau approves a smaller budget.
    app = ok(harbour.api("POST", "/v1/applications", {"dataset": "residents", "epsilon_per_period": "6",
                                                      "purpose": "Credit risk by township for rural loans"}), 201)
    assert app["status"] == "pending" and app["approvals"]["source"] is None
    ok(gw.api("POST", f"/v1/applications/{app['id']}/cosign", "demo-source-psb"))
    done = ok(gw.api("POST", f"/v1/applications/{app['id']}/approve", "demo-bureau",
                     {"epsilon_per_period": 4, "valid_until": "2036-01-01T00:00:00Z"}))
    assert done["status"] == "approved" and done["epsilon_approved"] == 4.0 and done["grant_id"]
    grant = ok(harbour.api("GET", f"/v1/grants/{done['grant_id']}"))
    assert grant["status"] == "active" and grant["epsilon_per_period"] == 4.0

    # 2. The merchant drafts a product, tries it on the twin, submits; the bureau publishes.
    draft = ok(gw.api("POST", "/v1/products", "demo-merchant", {
        "id": "income-by-sex-and-age", "dataset": "residents", "title": "Income by sex and age band",
        "sql": PRODUCT_SQL, "epsilon": "0.3", "price_minor": 700,
        "parameters": [{"name": "min_age", "type": "integer", "minimum": 16, "maximum": 100, "example": 30},
                       {"name": "max_age", "type": "integer", "minimum": 16, "maximum": 110, "default": 65},
                       {"name": "sex", "type": "string"}]}), 201)
    assert draft["status"] == "draft" and draft["version"] == 1
    tried = ok(gw.api("POST", "/v1/products/income-by-sex-and-age/versions/1/try", "demo-merchant",
                      {"params": {"min_age": 20, "sex": "M"}}))
    assert tried["twin"]["synthetic"] and tried["columns"] == ["township", "n", "mean_income"]
    assert len(tried["rows"]) == 20 and all(isinstance(r[1], int) for r in tried["rows"])
    ok(gw.api("POST", "/v1/products/income-by-sex-and-age/versions/1/submit", "demo-merchant"))
    assert gw.api("POST", "/v1/products/income-by-sex-and-age/versions/1/publish", "demo-merchant").status == 403
    record_agreement(gw, ["residents"], ["income-by-sex-and-age"])  # a product stands on an agreement listing it
    ok(gw.api("POST", "/v1/products/income-by-sex-and-age/versions/1/publish", "demo-bureau"))
    listed = {p["id"]: p for p in ok(harbour.api("GET", "/v1/products"))["items"]}
    product = listed["income-by-sex-and-age"]
    assert {p["name"]: p["example"] for p in product["parameters"]} == {"min_age": 30, "max_age": 65, "sex": "F"}
    assert "sql" not in json.dumps(product)

    # 3. The bank invokes it several times; a replay by key gives the same bytes.
    answers = [ok(harbour.api("POST", "/v1/products/income-by-sex-and-age/invoke",
                              {"params": {"min_age": 20 + i, "sex": "F"}})) for i in range(3)]
    assert all(a["epsilon_spent"] == 0.3 and a["usage"]["price_minor"] == 700 for a in answers)
    keyed = [harbour.api("POST", "/v1/products/income-by-sex-and-age/invoke", {"params": {"min_age": 40, "sex": "M"}},
                         headers={"Idempotency-Key": "story-1"}) for _ in range(2)]
    assert keyed[0].status == keyed[1].status == 200 and keyed[0].body == keyed[1].body
    bad = harbour.api("POST", "/v1/products/income-by-sex-and-age/invoke", {"params": {"min_age": 5, "sex": "F"}})
    assert bad.status == 400 and bad.json["code"] == "invalid_request"

    # 4. The source department suspends the dataset (409), then resumes it.
    ok(gw.api("POST", "/v1/datasets/residents/suspend", "demo-source-psb"))
    refused_before, entries_before = suspended_refusals(gw), ok(gw.api("GET", "/v1/audit/verify", "demo-bureau"))
    r = harbour.api("POST", "/v1/products/income-by-sex-and-age/invoke", {"params": {"min_age": 50, "sex": "F"}})
    assert r.status == 409 and r.json["code"] == "dataset_suspended"
    # A product call is refused like a query: metered, and audited (one entry, the refusal's).
    assert suspended_refusals(gw) == refused_before + 1
    assert ok(gw.api("GET", "/v1/audit/verify", "demo-bureau"))["entries"] == entries_before["entries"] + 1
    ok(gw.api("POST", "/v1/datasets/residents/resume", "demo-source-psb"))
    ok(harbour.api("POST", "/v1/products/income-by-sex-and-age/invoke", {"params": {"min_age": 50, "sex": "F"}}))

    # 5. The month's invoice and statements come out and add up exactly.
    raw = harbour.api("GET", f"/v1/invoices/{period}")
    assert raw.body == harbour.api("GET", f"/v1/invoices/{period}").body
    invoice = raw.json
    assert invoice["total_minor"] == sum(ln["amount_minor"] for ln in invoice["lines"]) == 5 * 700
    text = harbour.api("GET", f"/v1/invoices/{period}", headers={"Accept": "text/csv"})
    assert text.header("content-type").startswith("text/csv")
    rows = list(csv.reader(io.StringIO(text.body.decode())))
    assert rows[-1][0] == "total" and int(rows[-1][9]) == invoice["total_minor"]
    revenue = ok(gw.api("GET", f"/v1/revenue/{period}", "demo-bureau"))
    parties = {s["party"]: s["total_minor"] for s in revenue["statements"]}
    assert sum(parties.values()) == revenue["invoices_total_minor"] >= invoice["total_minor"]
    assert parties["datasmith"] > 0 and parties["psb"] > parties["bureau"] > 0
    own = ok(gw.api("GET", f"/v1/revenue/{period}", "demo-source-psb"))
    assert [s["party"] for s in own["statements"]] == ["psb"] and own["statements"][0]["total_minor"] == parties["psb"]
    assert "invoices_total_minor" not in own

    # 6. Every step is in the audit log, and the log verifies.
    verdict = ok(gw.api("GET", "/v1/audit/verify", "demo-bureau"))
    assert verdict["ok"] is True


def test_approvals_in_the_other_order_and_auto_approval(gw: Gateway, harbour: Caller) -> None:
    app = ok(harbour.api("POST", "/v1/applications", {"dataset": "vehicles", "epsilon_per_period": 3,
                                                      "purpose": "Motor insurance pricing study"}), 201)
    half = ok(gw.api("POST", f"/v1/applications/{app['id']}/approve", "demo-bureau"))
    assert half["status"] == "pending" and half["approvals"]["bureau"] and half["grant_id"] is None
    assert gw.api("POST", f"/v1/applications/{app['id']}/approve", "demo-bureau").status == 409
    done = ok(gw.api("POST", f"/v1/applications/{app['id']}/cosign", "demo-source-psb"))
    assert done["status"] == "approved" and done["epsilon_approved"] == 3.0
    # enterprises: no co-signature needed, auto-approved up to 5.0.
    auto = ok(harbour.api("POST", "/v1/applications", {"dataset": "enterprises", "epsilon_per_period": "2.5",
                                                       "purpose": "Lending to small firms by industry"}), 201)
    assert auto["status"] == "approved" and auto["approvals"]["bureau"]["by"] == "policy:auto-approve"
    big = ok(harbour.api("POST", "/v1/applications", {"dataset": "enterprises", "epsilon_per_period": 9,
                                                      "purpose": "Lending to small firms by industry"}), 201)
    assert big["status"] == "pending"
    rejected = ok(gw.api("POST", f"/v1/applications/{big['id']}/reject", "demo-bureau", {"reason": "too much"}))
    assert rejected["status"] == "rejected" and rejected["reason"] == "too much"
    # A source department that does not own the dataset cannot see, co-sign or reject it.
    for verb in ("cosign", "reject"):
        r = gw.api("POST", f"/v1/applications/{app['id']}/{verb}", "demo-source-amr", {"reason": "x"})
        assert r.status == 404


def test_another_requesters_objects_answer_like_missing_ones(gw: Gateway, harbour: Caller) -> None:
    """R-AU-06: same status and body (but the request id) for someone else's id and a made-up one."""
    mine = ok(harbour.api("GET", "/v1/applications"))["items"][0]
    grant = ok(harbour.api("GET", "/v1/grants"))["items"][0]
    for path, missing in ((f"/v1/applications/{mine['id']}", "/v1/applications/app-0000000000000000"),
                          (f"/v1/grants/{grant['id']}", "/v1/grants/grant-0000000000000000")):
        theirs, nothing = gw.api("GET", path, "demo-insurer"), gw.api("GET", missing, "demo-insurer")
        assert theirs.status == nothing.status == 404
        strip = lambda r: {k: v for k, v in r.json.items() if k != "instance"}  # noqa: E731
        assert strip(theirs) == strip(nothing)
    assert all(a["org_id"] == "county-mutual-insurance"
               for a in ok(gw.api("GET", "/v1/applications", "demo-insurer"))["items"])


def test_suspended_requester_is_refused_at_once_and_secrets_rotate(gw: Gateway) -> None:
    """R-AU-05: effective at the next request even with a valid token."""
    caller = register(gw, "quay-credit", "quay-app")
    assert caller.api("GET", "/v1/budget").status == 200
    ok(gw.api("POST", "/v1/requesters/quay-credit/suspend", "demo-bureau", {"reason": "audit"}))
    assert caller.api("GET", "/v1/budget").status == 401
    assert caller.login().status == 401
    ok(gw.api("POST", "/v1/requesters/quay-credit/reinstate", "demo-bureau"))
    assert caller.login().status == 200 and caller.api("GET", "/v1/budget").status == 200
    rotated = ok(caller.api("POST", "/v1/clients/quay-app/secret"))
    assert caller.login().status == 401  # the old secret stopped working
    caller.secret = rotated["client_secret"]
    assert caller.login().status == 200
    # Someone else's client answers like a missing one.
    assert gw.api("POST", "/v1/clients/quay-app/secret", "demo-bank").status == 404
    ok(gw.api("POST", "/v1/clients/quay-app/suspend", "demo-bureau"))
    assert caller.api("GET", "/v1/budget").status == 401
    listed = {o["org_id"]: o for o in ok(gw.api("GET", "/v1/requesters", "demo-bureau"))["items"]}
    assert listed["quay-credit"]["clients"][0]["status"] == "suspended"
    assert "client_secret" not in json.dumps(listed)


def test_merchant_versions_supersede_and_stay_private(gw: Gateway) -> None:
    rival = register(gw, "rival-data", "rival-app", kind="merchant")
    body = {"title": "Counts by township", "epsilon": "0.2", "price_minor": 100,
            "sql": "SELECT township, COUNT(*) AS n FROM residents WHERE age >= :min_age GROUP BY township",
            "parameters": [{"name": "min_age", "type": "integer", "minimum": 0, "maximum": 100}]}
    ok(gw.api("POST", "/v1/products", "demo-merchant", {"id": "towns", "dataset": "residents", **body}), 201)
    record_agreement(gw, ["residents"], ["towns"])
    for version in (1,):
        ok(gw.api("POST", f"/v1/products/towns/versions/{version}/submit", "demo-merchant"))
        ok(gw.api("POST", f"/v1/products/towns/versions/{version}/publish", "demo-bureau"))
    second = ok(gw.api("POST", "/v1/products/towns/versions", "demo-merchant", {**body, "price_minor": 150}), 201)
    assert second["version"] == 2
    assert ok(gw.api("GET", "/v1/products/towns", "demo-bank"))["version"] == 1
    ok(gw.api("POST", "/v1/products/towns/versions/2/submit", "demo-merchant"))
    ok(gw.api("POST", "/v1/products/towns/versions/2/publish", "demo-bureau"))
    current = ok(gw.api("GET", "/v1/products/towns", "demo-bank"))
    assert current["version"] == 2 and current["price"]["per_call_minor"] == 150
    versions = ok(gw.api("GET", "/v1/products/towns/versions", "demo-merchant"))["items"]
    assert [v["status"] for v in versions] == ["superseded", "published"]
    assert rival.api("GET", "/v1/products/towns/versions").status == 404
    assert rival.api("POST", "/v1/products/towns/versions", body).status == 404
    # A published version cannot be submitted or published again.
    assert gw.api("POST", "/v1/products/towns/versions/2/submit", "demo-merchant").status == 409


def test_policy_publication_validates_diffs_and_applies(gw: Gateway) -> None:
    current = ok(gw.api("GET", "/v1/datasets/enterprises/policy", "demo-bureau"))
    doc = dict(current["document"])
    doc["pricing"] = {**doc["pricing"], "per_call_minor": 350}
    yaml_headers = {"Content-Type": "application/json"}
    dry = ok(gw.api("PUT", "/v1/datasets/enterprises/policy?dry_run=true", "demo-bureau",
                    json.dumps(doc).encode(), yaml_headers))
    assert dry["published"] is False
    assert dry["changes"] == [{"path": "pricing.per_call_minor", "old": 300, "new": 350, "change": "changed"}]
    broken = {**doc, "epsilon": {"min": "0.5", "max": "0.1"}}
    r = gw.api("PUT", "/v1/datasets/enterprises/policy", "demo-bureau", json.dumps(broken).encode(), yaml_headers)
    assert r.status == 422 and r.json["problems"] and all("line" in p for p in r.json["problems"])
    done = ok(gw.api("PUT", "/v1/datasets/enterprises/policy", "demo-bureau", json.dumps(doc).encode(),
                     yaml_headers))
    assert done["published"] and done["previous_version"] == current["version"]
    catalog = ok(gw.api("GET", "/v1/datasets/enterprises", "demo-bank"))
    assert catalog["price"]["per_call_minor"] == 350 and catalog["policy_version"] == done["version"]
    versions = ok(gw.api("GET", "/v1/datasets/enterprises/policy", "demo-source-amr"))["versions"]
    assert {v["version"] for v in versions} >= {current["version"], done["version"]}
    assert gw.api("GET", "/v1/datasets/enterprises/policy", "demo-source-psb").status == 404
    assert gw.api("PUT", "/v1/datasets/enterprises/policy", "demo-source-amr", json.dumps(doc).encode(),
                  yaml_headers).status == 403


def test_policy_apply_and_invoice_from_the_command_line(gw: Gateway, harbour: Caller, tmp_path: Path) -> None:
    """`gateway policy apply FILE` writes the store; the running server serves it from its next poll."""
    source = (Path(__file__).resolve().parent.parent / "policies" / "social_insurance.yaml").read_text()
    changed = tmp_path / "social_insurance.yaml"
    changed.write_text(source.replace("per_call_minor: 800", "per_call_minor: 900"))
    broken = tmp_path / "broken.yaml"
    broken.write_text(source.replace('max: "1.0"}', 'max: "0.01"}'))
    run = lambda *args: subprocess.run([str(BIN / "gateway"), *args, "--state-dir", str(gw.state_dir)],  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    refused = run("policy", "apply", str(broken))
    assert refused.returncode == 1 and "broken.yaml:" in refused.stderr and "nothing published" in refused.stderr
    dry = run("policy", "apply", str(changed), "--dry-run")
    assert dry.returncode == 0 and "~ pricing.per_call_minor: 800 -> 900" in dry.stdout and "dry run" in dry.stdout
    applied = run("policy", "apply", str(changed))
    assert applied.returncode == 0 and "published social_insurance" in applied.stdout, applied.stderr
    deadline = time.monotonic() + 5
    while ok(gw.api("GET", "/v1/datasets/social_insurance", "demo-bank"))["price"]["per_call_minor"] != 900:
        assert time.monotonic() < deadline, "the server did not pick the new policy up"
        time.sleep(0.2)

    period = ok(gw.api("GET", "/v1/budget", "demo-bank"))["period"]
    printed = run("invoice", "--period", period)
    assert printed.returncode == 0, printed.stderr
    by_org = {json.loads(line)["org_id"]: line.encode() for line in printed.stdout.splitlines()}
    assert by_org["harbour-bank"] == harbour.api("GET", f"/v1/invoices/{period}").body

def test_withdrawal_ends_grants_and_stops_products(gw: Gateway) -> None:
    """Runs last in the module: `vehicles` stays withdrawn."""
    assert gw.api("POST", "/v1/datasets/vehicles/withdraw", "demo-bank").status == 403
    assert gw.api("POST", "/v1/datasets/vehicles/withdraw", "demo-source-amr").status == 404
    result = ok(gw.api("POST", "/v1/datasets/vehicles/withdraw", "demo-source-psb"))
    assert result["status"] == "withdrawn" and result["grants_ended"] >= 1
    grants = ok(gw.api("GET", "/v1/grants", "demo-insurer"))["items"]
    assert all(g["status"] == "ended" for g in grants if g["dataset"] == "vehicles")
    assert "vehicle-values-by-type" not in {p["id"] for p in ok(gw.api("GET", "/v1/products", "demo-bank"))["items"]}
    r = gw.api("POST", "/v1/products/vehicle-values-by-type/invoke", "demo-insurer", {"params": {}})
    assert r.status == 410 and r.json["code"] == "dataset_withdrawn"
    r = gw.api("POST", "/v1/datasets/vehicles/resume", "demo-bureau")
    assert r.status == 410

