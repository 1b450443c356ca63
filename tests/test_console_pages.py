"""Console pages over real HTTP: each role sees only its pages and its objects, every page
passes the accessibility checker, and the daily work of each role goes through the same
service rules as the API (the story's steps, without a browser)."""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.a11y import problems
from tests.console_support import Visitor, demo_users
from tests.support import Gateway, demo_gateway, record_agreement

# Pages each demo role opens from its menu; every other menu page answers 403.
MENU_PAGES = {
    "requester": {"/console/catalog", "/console/workbench", "/console/budget", "/console/usage",
                  "/console/applications", "/console/clients", "/console/grants", "/console/market"},
    "bureau": {"/console/catalog", "/console/bureau", "/console/applications/review", "/console/grants",
               "/console/products/review", "/console/market", "/console/requesters", "/console/users",
               "/console/audit", "/console/billing", "/console/policies", "/console/datasets",
               "/console/agreements"},
    # Every organisation manages its own API clients (issue 19 point 4), departments and ops too.
    "source": {"/console/catalog", "/console/applications/cosign", "/console/grants", "/console/market",
               "/console/revenue", "/console/datasets", "/console/clients", "/console/agreements"},
    "merchant": {"/console/catalog", "/console/clients", "/console/products", "/console/market",
                 "/console/revenue"},
    "ops": {"/console/catalog", "/console/market", "/console/status", "/console/clients"},
}
ALL_MENU_PAGES = set().union(*MENU_PAGES.values())
ROLE_OF = {"bank-analyst": "requester", "insurer-analyst": "requester", "bureau-admin": "bureau",
           "psb-officer": "source", "merchant-dev": "merchant", "ops-viewer": "ops"}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    state = tmp_path_factory.mktemp("console-pages")
    g = demo_gateway(state, demo_data).start()
    yield g
    g.stop()


def as_user(gw: Gateway, username: str) -> Visitor:
    v = Visitor(gw.base)
    assert v.login(username, demo_users(gw.state_dir)[username]["password"]).status == 303
    return v


def menu_of(page: str) -> set[str]:
    nav = page.split('<nav aria-label=', 1)[1].split("</nav>", 1)[0]
    return set(re.findall(r'href="(/console/[^"]*)"', nav))


@pytest.mark.parametrize("username", sorted(ROLE_OF))
def test_each_role_sees_its_own_menu_and_is_refused_every_other_page(gw: Gateway, username: str) -> None:
    v = as_user(gw, username)
    home = v.get("/console/")
    assert home.status == 200
    assert menu_of(home.body.decode()) == MENU_PAGES[ROLE_OF[username]]
    for path in sorted(ALL_MENU_PAGES):
        reply = v.get(path)
        expected = 200 if path in MENU_PAGES[ROLE_OF[username]] else 403
        assert reply.status == expected, (username, path, reply.status)
        if reply.status == 200:
            assert problems(reply.body.decode()) == [], (username, path)


def test_pages_are_in_chinese_by_default_and_in_english_on_request(gw: Gateway) -> None:
    v = as_user(gw, "bank-analyst")
    assert "数据目录" in v.get("/console/catalog").body.decode()
    english = Visitor(gw.base, headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert english.login("bank-analyst", demo_users(gw.state_dir)["bank-analyst"]["password"]).status == 303
    page = english.get("/console/catalog").body.decode()
    assert "Catalog" in page and "数据目录" not in page and 'lang="en"' in page
    # The user's own choice wins over the browser's.
    assert english.post("/console/language", {"language": "zh-CN", "next": "/console/catalog"}).status == 303
    assert "数据目录" in english.get("/console/catalog").body.decode()
    assert english.post("/console/language", {"language": "", "next": "/console/catalog"}).status == 303


def application_ids(page: str) -> set[str]:
    return set(re.findall(r"<code>(app-[0-9a-f]{16})</code>", page))


def test_the_application_story_over_http(gw: Gateway) -> None:
    """Apply (bank) -> co-sign (PSB) -> approve (bureau) -> preview, run, CSV -> suspension with a reason."""
    bank, psb, bureau = as_user(gw, "bank-analyst"), as_user(gw, "psb-officer"), as_user(gw, "bureau-admin")
    assert bank.post("/console/applications", {
        "target": "dataset:vehicles", "purpose": "Price motor insurance bundled with car loans by township.",
        "epsilon_per_period": "8"}, csrf_from="/console/applications").status == 303
    (app_id,) = application_ids(bank.get("/console/applications").body.decode())
    insurer = as_user(gw, "insurer-analyst")
    assert app_id not in insurer.get("/console/applications").body.decode()  # another requester's: not shown
    assert insurer.post(f"/console/applications/{app_id}/approve").status == 403  # not the insurer's role
    merchant = as_user(gw, "merchant-dev")
    assert merchant.post(f"/console/applications/{app_id}/cosign").status == 403

    assert app_id in psb.get("/console/applications/cosign").body.decode()
    assert psb.post(f"/console/applications/{app_id}/cosign", csrf_from="/console/applications/cosign").status == 303
    assert bureau.post(f"/console/applications/{app_id}/approve", {"epsilon_per_period": "8"},
                       csrf_from="/console/applications/review").status == 303
    assert "已批准" in bank.get("/console/applications").body.decode()

    query = {"dataset": "vehicles", "epsilon": "1", "delta": "0",
             "sql": "SELECT vehicle_type, COUNT(*) AS n, AVG(value) AS mean_value FROM vehicles GROUP BY vehicle_type"}
    preview = bank.post("/console/workbench/preview", query, csrf_from="/console/workbench").body.decode()
    assert "预览：尚未消耗任何预算" in preview and "8.000" in preview  # the new grant's budget, untouched
    run_key = re.search(r'name="run_key" value="([^"]+)"', preview).group(1)  # type: ignore[union-attr]
    answer = bank.post("/console/workbench/run", {**query, "run_key": run_key}, csrf_from="/console/workbench")
    page = answer.body.decode()
    assert answer.status == 200 and "7.000 / 8.000" in page and '<svg' in page and 'class="interval"' in page
    assert problems(page) == []
    download = bank.post("/console/workbench/csv", {**query, "run_key": run_key}, csrf_from="/console/workbench")
    assert download.status == 200 and download.header("Content-Type", ).startswith("text/csv")  # type: ignore[union-attr]
    rows = list(csv.reader(io.StringIO(download.body.decode("utf-8-sig"))))
    assert rows[0][:3] == ["vehicle_type", "n", "mean_value"] and len(rows) == 8  # seven public categories
    # Each row's own interval (an average's depends on its group's noisy count), as the API has it.
    query_id = re.search(r'filename="vehicles-(.+)\.csv"', download.header("Content-Disposition") or "").group(1)  # type: ignore[union-attr]
    per_row = gw.api("GET", f"/v1/queries/{query_id}", "demo-bank").json["accuracy"]["rows"]
    assert [float(r[4]) for r in rows[1:]] == [r["mean_value"] for r in per_row]
    assert len({r["mean_value"] for r in per_row}) > 1
    assert "7.000 / 8.000" in bank.post("/console/workbench/run", {**query, "run_key": run_key},
                                        csrf_from="/console/workbench").body.decode()  # replayed, not spent again

    assert psb.get("/console/datasets/vehicles/status?action=suspend").status == 200
    assert psb.post("/console/datasets/vehicles/status", {"action": "suspend", "reason": "核查登记数据中"},
                    csrf_from="/console/datasets").status == 303
    refused = bank.post("/console/workbench/run", {**query, "run_key": "k" * 24}, csrf_from="/console/workbench")
    assert refused.status == 409 and "核查登记数据中" in refused.body.decode()
    assert psb.post("/console/datasets/vehicles/status", {"action": "resume", "reason": "核查完毕"},
                    csrf_from="/console/datasets").status == 303
    with sqlite3.connect(gw.state_dir / "gateway.db") as db:
        actors = {r[0] for r in db.execute("SELECT actor FROM audit_log WHERE kind IN "
                                           "('application.submitted', 'dataset.suspended', 'console.action')")}
    assert {"user:bank-analyst", "user:psb-officer", "user:bureau-admin"} <= actors


def test_a_source_department_manages_only_its_own_datasets(gw: Gateway) -> None:
    psb = as_user(gw, "psb-officer")
    page = psb.get("/console/datasets").body.decode()
    assert "residents" in page and "vehicles" in page and "enterprises" not in page
    assert psb.get("/console/datasets/enterprises/status?action=suspend").status == 404
    assert psb.post("/console/datasets/enterprises/status", {"action": "suspend", "reason": "x"},
                    csrf_from="/console/datasets").status == 404
    assert psb.get("/console/datasets/enterprises/snapshots").status == 403
    assert "enterprises" in gw.api("GET", "/v1/datasets/enterprises", "demo-bank").json["id"]
    assert gw.api("GET", "/v1/datasets/enterprises", "demo-bank").json["status"] == "active"


def test_clients_and_products_of_others_answer_like_missing_ones(gw: Gateway) -> None:
    insurer = as_user(gw, "insurer-analyst")
    assert insurer.post("/console/clients/demo-bank/secret", csrf_from="/console/clients").status == 404
    assert "demo-bank" not in insurer.get("/console/clients").body.decode()
    made = insurer.post("/console/clients", {"client_id": "insurer-pricing-job"}, csrf_from="/console/clients")
    assert made.status == 200 and "insurer-pricing-job" in made.body.decode()
    secret = re.search(r'class="secret" value="([^"]+)"', made.body.decode())
    assert secret is not None and gw.form("/oauth/token", {
        "grant_type": "client_credentials", "client_id": "insurer-pricing-job",
        "client_secret": secret.group(1)}).status == 200
    assert "insurer-pricing-job" in insurer.get("/console/clients").body.decode()
    assert insurer.post("/console/clients", {"client_id": "insurer-pricing-job"},
                        csrf_from="/console/clients").status == 409
    # A department's clients are made by the bureau: no form on its page, and the path refuses it.
    psb = as_user(gw, "psb-officer")
    assert 'action="/console/clients"' not in psb.get("/console/clients").body.decode()
    assert psb.post("/console/clients", {"client_id": "psb-two"}, csrf_from="/console/clients").status == 403
    bureau = as_user(gw, "bureau-admin")
    assert bureau.post("/console/requesters", {"org_id": "rival-data", "name": "Rival Data", "kind": "merchant"},
                       csrf_from="/console/requesters").status == 303
    assert bureau.post("/console/users", {"username": "rival-dev", "display_name": "Rival", "org_id": "rival-data",
                                          "roles": "merchant", "password": "a long password 1"},
                       csrf_from="/console/users").status == 303
    rival = Visitor(gw.base)
    assert rival.login("rival-dev", "a long password 1").status == 303
    assert rival.get("/console/products/income-by-township").status == 404
    assert "income-by-township" not in rival.get("/console/products").body.decode()
    # A user gets the roles of its organisation's kind only.
    refused = bureau.post("/console/users", {"username": "sneaky", "display_name": "S", "org_id": "rival-data",
                                             "roles": "bureau", "password": "a long password 2"},
                          csrf_from="/console/users")
    assert refused.status == 400
    # Suspending the user ends its session at once.
    assert bureau.post("/console/users/rival-dev/status", {"action": "suspend", "reason": "left"},
                       csrf_from="/console/users").status == 303
    assert rival.get("/console/products").status == 303


def test_the_product_story_over_http(gw: Gateway) -> None:
    merchant, bureau, bank = as_user(gw, "merchant-dev"), as_user(gw, "bureau-admin"), as_user(gw, "bank-analyst")
    draft = {"id": "firms-by-industry", "dataset": "enterprises", "title": "Firms by industry in a township",
             "description": "", "epsilon": "0.5", "price": "6.50",
             "sql": "SELECT industry, COUNT(*) AS firms FROM enterprises WHERE township = :township GROUP BY industry",
             "parameters": '[{"name": "township", "type": "string", "example": "Lingxi"}]'}
    assert merchant.post("/console/products", draft, csrf_from="/console/products/new").status == 303
    tried = merchant.post("/console/products/firms-by-industry/versions/1/try", {"params": ""},
                          csrf_from="/console/products/firms-by-industry")
    assert tried.status == 200 and "孪生" in tried.body.decode()
    assert merchant.post("/console/products/firms-by-industry/versions/1/submit",
                         csrf_from="/console/products/firms-by-industry").status == 303
    assert "firms-by-industry" in bureau.get("/console/products/review").body.decode()
    record_agreement(gw, ["enterprises"], ["firms-by-industry"])  # a product stands on an agreement listing it
    assert bureau.post("/console/products/firms-by-industry/versions/1/publish",
                       csrf_from="/console/products/review").status == 303
    market = bank.get("/console/market").body.decode()
    assert "firms-by-industry" in market and "¥6.50" in market
    run_key = re.search(r'name="run_key" value="([^"]+)"', market).group(1)  # type: ignore[union-attr]
    answer = bank.post("/console/market/firms-by-industry/invoke", {"params": "", "run_key": run_key},
                       csrf_from="/console/market")
    assert answer.status == 200 and "industry" in answer.body.decode() and "¥6.50" in answer.body.decode()
    verify = bureau.get("/console/audit?verify=1").body.decode()
    assert 'id="verdict"' in verify and "哈希链完好" in verify


def test_the_accessibility_checker_sees_what_it_checks() -> None:
    bad = ('<html><body><h1>a</h1><h1>b</h1><input name="q"><button></button><a href="/x"></a>'
           '<table><tr><td>1</td></tr></table><img src="x"><svg role="img"></svg><p id="d"></p><p id="d"></p>')
    assert problems(bad) == [
        "the page has no language (html lang)", "the page has 2 h1 headings, not one", "a table has no caption",
        "id 'd' is used more than once", "<input name='q'> has no label", "a button has no text",
        "the link to '/x' has no text", "an image has no alt text", "a chart has no accessible name"]
    good = ('<html lang="en"><body><h1>a</h1><label for="q">Q</label><input id="q" name="q">'
            '<button>Go</button><table><caption>T</caption></table></body></html>')
    assert problems(good) == []


def _multipart(fields: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = "----console-test-boundary"
    parts = []
    for name, filename, content in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        parts.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_a_refused_upload_shows_its_validation_report_and_changes_nothing(gw: Gateway) -> None:
    psb = as_user(gw, "psb-officer")
    before = psb.get("/console/datasets/vehicles/snapshots").body.decode()
    token = re.search(r'name="csrf_token" value="([^"]*)"', before).group(1)  # type: ignore[union-attr]
    bad = b"person_id,township\np1,Nowhere\n"
    body, ctype = _multipart([("csrf_token", "", token.encode()), ("file", "vehicles.csv", bad)])
    refused = psb.request_raw("POST", "/console/datasets/vehicles/snapshots", body, ctype)
    page = refused.body.decode()
    assert refused.status == 422 and "文件被拒绝" in page and "<code>" in page
    assert problems(page) == []
    forged, ctype = _multipart([("csrf_token", "", b"forged"), ("file", "vehicles.csv", bad)])
    assert psb.request_raw("POST", "/console/datasets/vehicles/snapshots", forged, ctype).status == 403
    after = psb.get("/console/datasets/vehicles/snapshots").body.decode()
    assert re.findall(r"<code>([0-9a-f]{16})</code>", after) == re.findall(r"<code>([0-9a-f]{16})</code>", before)


def test_the_bureau_records_and_ends_an_agreement_in_the_console(gw: Gateway) -> None:
    bureau, psb = as_user(gw, "bureau-admin"), as_user(gw, "psb-officer")
    fields = {"authorising_body": "县人民政府", "operator": "datasmith", "datasets": "vehicles",
              "product_ids": "car-atlas, car-index", "starts_on": "2026-01-01", "ends_on": "2030-12-31",
              "duties": "只经网关提供", "exit_terms": "终止即停止", "document_sha256": "ab" * 32}
    before = gw.api("GET", "/v1/agreements?limit=500", "demo-bureau").json["items"]
    refused = bureau.post("/console/agreements", {**fields, "document_sha256": "not-a-hash"},
                          csrf_from="/console/agreements")
    assert refused.status == 400 and "document_sha256" in refused.body.decode()
    assert gw.api("GET", "/v1/agreements?limit=500", "demo-bureau").json["items"] == before
    assert bureau.post("/console/agreements", fields, csrf_from="/console/agreements").status == 303
    made = gw.api("GET", "/v1/agreements?limit=500", "demo-bureau").json["items"][-1]
    assert made["datasets"] == ["vehicles"] and made["product_ids"] == ["car-atlas", "car-index"]
    page = bureau.get("/console/agreements").body.decode()
    assert made["id"] in page and "授权运营协议" in page
    seen = psb.get("/console/agreements").body.decode()  # psb owns vehicles: it reads, it cannot record or end
    assert made["id"] in seen and 'action="/console/agreements"' not in seen
    assert psb.post(f"/console/agreements/{made['id']}/end", {"reason": "x"},
                    csrf_from="/console/agreements").status == 403
    assert bureau.post(f"/console/agreements/{made['id']}/end", {"reason": "operator exited"},
                       csrf_from="/console/agreements").status == 303
    assert gw.api("GET", f"/v1/agreements/{made['id']}", "demo-bureau").json["status"] == "ended"
