"""Every client can be cut off (issue 19 point 4): suspend, resume and rotate, for every kind.

A leaked source-department credential can replace data, withdraw datasets, co-sign and revoke;
it must be stoppable from the API (the bureau for any client, an organisation for its own) and
from the command line, the bureau's own clients included, without editing the database.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import BIN, Gateway, Reply, seed_demo_data

FAST = {"GATEWAY_RATE_LIMIT_PER_SECOND": "1000", "GATEWAY_RATE_LIMIT_BURST": "2000"}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    state = tmp_path_factory.mktemp("client-governance")
    seed_demo_data(state, demo_data)
    gateway = Gateway(state, env=FAST).start()
    yield gateway
    gateway.stop()


def login(gw: Gateway, client_id: str, secret: str) -> Reply:
    return gw.form("/oauth/token", {"grant_type": "client_credentials", "client_id": client_id,
                                    "client_secret": secret})


def still_in(gw: Gateway, client_id: str) -> int:
    """The status of a call with the client's (still unexpired) token."""
    return gw.api("GET", "/v1/datasets", client_id).status


def cli(gw: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "gateway"), "client", *args, "--state-dir", str(gw.state_dir)],
                          capture_output=True, text=True, timeout=120)


def test_the_bureau_suspends_and_resumes_a_client_of_every_kind(gw: Gateway) -> None:
    for client in ("demo-source-psb", "demo-ops", "demo-merchant", "demo-bank"):
        assert still_in(gw, client) == 200
        suspended = gw.api("POST", f"/v1/clients/{client}/suspend", "demo-bureau", {"reason": "leaked"})
        assert suspended.status == 200 and suspended.json["status"] == "suspended", (client, suspended.body)
        assert still_in(gw, client) == 401, client  # at once, though its token is still valid
        assert login(gw, client, gw.credentials[client]["client_secret"]).status == 401
        resumed = gw.api("POST", f"/v1/clients/{client}/resume", "demo-bureau")
        assert resumed.status == 200 and resumed.json["status"] == "active"
        assert still_in(gw, client) == 200


def test_a_department_manages_its_own_clients_and_no_one_elses(gw: Gateway) -> None:
    rotated = gw.api("POST", "/v1/clients/demo-source-psb/secret", "demo-source-psb")
    assert rotated.status == 200 and rotated.headers.get("Cache-Control") == "no-store"
    old = gw.credentials["demo-source-psb"]["client_secret"]
    assert login(gw, "demo-source-psb", old).status == 401
    assert login(gw, "demo-source-psb", rotated.json["client_secret"]).status == 200
    for other in ("demo-source-amr", "demo-bank", "demo-bureau", "demo-ops"):
        for action in ("suspend", "secret", "resume"):
            assert gw.api("POST", f"/v1/clients/{other}/{action}", "demo-source-psb").status == 404, (other, action)
    assert still_in(gw, "demo-source-amr") == 200


def test_a_requester_creates_clients_of_its_own_organisation_only(gw: Gateway) -> None:
    made = gw.api("POST", "/v1/clients", "demo-bank", {"client_id": "bank-batch-job"})
    assert made.status == 201 and made.headers.get("Cache-Control") == "no-store", made.body
    assert made.json["org_id"] == "lingxi-rural-bank"
    assert made.json["roles"] == ["requester"]  # the organisation's one role, whatever the body says
    token = login(gw, "bank-batch-job", made.json["client_secret"])
    assert token.status == 200
    auth = {"Authorization": "Bearer " + token.json["access_token"]}
    assert gw.api("GET", "/v1/budget", headers=auth).status == 200
    assert gw.api("GET", "/v1/requesters", headers=auth).status == 403
    # The same id again, a malformed id, extra fields: refused, nothing made.
    assert gw.api("POST", "/v1/clients", "demo-bank", {"client_id": "bank-batch-job"}).status == 409
    assert gw.api("POST", "/v1/clients", "demo-bank", {"client_id": "Bad Id"}).status == 400
    assert gw.api("POST", "/v1/clients", "demo-bank", {"client_id": "bank-x", "roles": ["bureau"]}).status == 400
    assert login(gw, "bank-x", "anything").status == 401
    # Departments and ops have their clients made by the bureau; the bureau uses the organisation's path.
    for other in ("demo-source-psb", "demo-ops", "demo-bureau"):
        assert gw.api("POST", "/v1/clients", other, {"client_id": f"{other}-two"}).status == 403, other
    # The new client is the bank's: the insurer cannot touch it, the bank can suspend it.
    assert gw.api("POST", "/v1/clients/bank-batch-job/suspend", "demo-insurer", {"reason": "x"}).status == 404
    assert gw.api("POST", "/v1/clients/bank-batch-job/suspend", "demo-bank", {"reason": "done"}).status == 200


def test_no_client_suspends_itself_a_second_bureau_client_can(gw: Gateway) -> None:
    refused = gw.api("POST", "/v1/clients/demo-bureau/suspend", "demo-bureau")
    assert refused.status == 409 and refused.is_problem
    made = cli(gw, "add", "--org", "bureau", "--role", "bureau", "bureau-second")
    assert made.returncode == 0, made.stderr
    second = made.stdout.strip().splitlines()[-1]
    token = login(gw, "bureau-second", second).json["access_token"]
    auth = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
    assert gw.api("POST", "/v1/clients/demo-bureau/suspend", headers=auth, body={"reason": "leaked"}).status == 200
    assert still_in(gw, "demo-bureau") == 401
    assert gw.api("POST", "/v1/clients/demo-bureau/reinstate", headers=auth).status == 200
    assert still_in(gw, "demo-bureau") == 200


def wait_for(gw: Gateway, client: str, status: int) -> None:
    deadline = time.monotonic() + 5  # the server reads client statuses every 0.5 s
    while still_in(gw, client) != status:
        assert time.monotonic() < deadline, f"{client} is not {status} after a poll interval"
        time.sleep(0.1)


def test_the_command_line_suspends_resumes_and_rotates_any_client(gw: Gateway) -> None:
    stopped = cli(gw, "suspend", "demo-bureau", "--reason", "leaked laptop")
    assert stopped.returncode == 0 and "suspended" in stopped.stdout, stopped.stderr
    wait_for(gw, "demo-bureau", 401)
    resumed = cli(gw, "resume", "demo-bureau")
    assert resumed.returncode == 0, resumed.stderr
    wait_for(gw, "demo-bureau", 200)
    rotated = cli(gw, "rotate", "demo-source-amr")
    assert rotated.returncode == 0, rotated.stderr
    secret = rotated.stdout.strip().splitlines()[-1]
    assert login(gw, "demo-source-amr", gw.credentials["demo-source-amr"]["client_secret"]).status == 401
    assert login(gw, "demo-source-amr", secret).status == 200
    unknown = cli(gw, "suspend", "nobody")
    assert unknown.returncode != 0 and "nobody" in unknown.stderr
    trail = gw.api("GET", "/v1/audit/verify", "demo-bureau").json
    assert trail["ok"] is True


def test_maintenance_on_a_missing_state_folder_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    done = subprocess.run([str(BIN / "gateway"), "client", "suspend", "demo-bank", "--state-dir", str(missing)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and not missing.exists()


def test_a_client_made_by_another_process_works_before_the_next_poll(
        tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> None:
    """A client added by the command line (or on another replica) gets a token here and uses it
    at once: the replica that issues a token knows its client from then on, without waiting for
    its status poll (set to a minute here, so only that can explain a 200)."""
    state = tmp_path_factory.mktemp("client-made-elsewhere")
    seed_demo_data(state, demo_data)
    gateway = Gateway(state, env={**FAST, "GATEWAY_SUSPENSION_POLL_SECONDS": "60"}).start()
    try:
        made = cli(gateway, "add", "--org", "bureau", "--role", "bureau", "bureau-night-shift")
        assert made.returncode == 0, made.stderr
        token = login(gateway, "bureau-night-shift", made.stdout.strip().splitlines()[-1])
        assert token.status == 200
        auth = {"Authorization": "Bearer " + token.json["access_token"]}
        assert gateway.api("GET", "/v1/requesters", headers=auth).status == 200
    finally:
        gateway.stop()
