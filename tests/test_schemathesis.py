"""Schemathesis, every check, against a live gateway: once with a requester's token, once with the
bureau's. Generated from the served document, the requests probe each operation with documented
examples, boundary values and fuzzed data; every answer must be documented (status, media type,
headers, schema), no 5xx, invalid input refused, valid input not refused for what the schema allows.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.http.routes import all_routes
from tests.support import FAST_RATES, Gateway, demo_gateway

pytestmark = pytest.mark.slow  # about a minute per token

ST = Path(sys.executable).parent / "st"
# Checks the gateway does not pass yet, each with why: the HTTP parser's own refusals are not yet
# problem+json (API.md "Additions" asks for it), and a path two routes match advertises both in Allow.
# Drop each line when it is fixed.
PENDING = {
    "content_type_conformance": "the HTTP parser's own 400 (a request line over 8 KiB) is text/plain",
    "allow_header_conformance": "OPTIONS /v1/queries/preview also lists GET: /v1/queries/{query_id} matches it",
}

# Schema-valid data the gateway may still refuse, by what no JSON Schema can say: a cursor is only
# valid if the gateway issued it for that list (every paginated operation, from the route table);
# SQL must parse and pass the policy; ids must exist; a dataset the run itself suspended or withdrew
# answers 409 or 410.
# Prices: a cap below the price in force or in another model (422), a voucher for an organisation that
# is no requester or whose days are past, an allowance for a year whose December has closed.
# Registration: a code is refused with a trailing newline (a schema's `$` lets one through), a code
# another subject holds is 409, and a product version that is no longer submitted or published too.
# Agreements: the datasets in scope must be datasets the county serves (400 naming the field).
# Likewise invalid data may meet a state refusal first (a withdrawn dataset answers 410 before its
# upload body is read).
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", 401, 403, 404, 409, 410, 429]

[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 410, 413, 415, 422, 428, 429]

[[operations]]
include-operation-id = {paginated}
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404, 409, 410, 429]

[[operations]]
include-operation-id = ["token", "post_query", "post_preview", "invoke_product", "post_application",
                        "approve_application", "reject_application", "revoke_grant", "draft_product",
                        "draft_version", "try_version", "reject_version", "post_credit_note", "register_requester",
                        "create_client", "put_policy", "upload_snapshot", "post_price_cap", "post_voucher",
                        "put_allowed_revenue", "get_allowed_revenue", "get_annual_report",
                        "put_dataset_registration", "put_product_registration", "post_agreement"]
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404, 409, 410, 422, 429, 503]
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    if not ST.exists() or shutil.which(str(ST)) is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    with demo_gateway(tmp_path_factory.mktemp("fuzz"), demo_data, env=FAST_RATES) as gateway:
        yield gateway


@pytest.mark.parametrize("client", ["demo-bank", "demo-bureau"])  # the bureau's run suspends and withdraws
def test_schemathesis_finds_nothing(gw: Gateway, client: str, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    paginated = sorted(r.name for r in all_routes() if r.paginated)
    config.write_text(CONFIG.replace("{paginated}", json.dumps(paginated)))
    cmd = [str(ST), "--config-file", str(config), "run", gw.base + "/openapi.json", "--checks", "all",
           "--exclude-checks", ",".join(PENDING), "-H", f"Authorization: Bearer {gw.token(client)}",
           "--max-examples", "5", "--seed", "20261207", "--workers", "1", "--phases", "examples,coverage,fuzzing",
           "--no-shrink", "--request-timeout", "30"]
    ran = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    out = ran.stdout + ran.stderr
    assert ran.returncode == 0, out[-6000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", out)
    tested = re.search(r"Tested: (\d+)", out)
    assert selected and tested and selected[1] == selected[2] == tested[1], out[-2000:]  # every operation
