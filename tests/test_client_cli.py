"""The `gateway-client` command, the credit-risk example and the client's wheel, each run as a
separate process against the real gateway."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.client_support import BY_TOWNSHIP, ROOT, SKIP_REASON, TOWNSHIP_NAMES, TOWNSHIPS, client, creds, spent
from tests.support import BIN, Gateway

pytest.importorskip("gateway_client", reason=SKIP_REASON)


def cli(gw: Gateway, *args: str, env: dict[str, str] | None = None, stdin: str | None = None,
        ) -> subprocess.CompletedProcess[str]:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run([str(BIN / "gateway-client"), *args], capture_output=True, text=True, timeout=180,
                          env={**base_env, **(env or {})}, input=stdin)


def test_cli_commands(client_gateway: Gateway) -> None:
    by_file = ["--credentials-file", str(creds(client_gateway)), "--client-id", "demo-bank"]
    catalog = cli(client_gateway, "catalog", *by_file, "--json")
    assert catalog.returncode == 0, catalog.stderr
    assert "residents" in {d["id"] for d in json.loads(catalog.stdout)}
    columns = cli(client_gateway, "catalog", "residents", *by_file, "--table")
    assert columns.returncode == 0 and "income" in columns.stdout and "Chengguan" in columns.stdout

    sql = BY_TOWNSHIP.format(age=35)
    preview = cli(client_gateway, "preview", "residents", sql, "-e", "0.5", *by_file, "--json")
    assert preview.returncode == 0 and json.loads(preview.stdout)["would_fit"] is True

    secret = client_gateway.credentials["demo-bank"]["client_secret"]
    env = {"GATEWAY_URL": client_gateway.base, "GATEWAY_CLIENT_ID": "demo-bank", "GATEWAY_CLIENT_SECRET": secret}
    as_csv = cli(client_gateway, "query", "residents", "-", "--epsilon", "0.5", "--intervals", "halfwidth", env=env,
                 stdin=sql)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0] == ["township", "n", "n_halfwidth", "mean_income", "mean_income_halfwidth"]
    assert len(rows) == 1 + TOWNSHIPS
    as_json = cli(client_gateway, "query", "residents", sql, "-e", "0.5", "--json", env=env)
    assert json.loads(as_json.stdout)["cached"] is True  # the same question again: the stored release
    table = cli(client_gateway, "query", "residents", sql, "-e", "0.5", "--table", "--url", client_gateway.base,
                "--client-id", "demo-bank", "--client-secret", secret)
    assert table.returncode == 0 and "Chengguan" in table.stdout and "half-widths" in table.stdout

    budget = cli(client_gateway, "budget", *by_file)
    assert budget.returncode == 0 and budget.stdout.startswith("dataset,epsilon_limit")
    usage = cli(client_gateway, "usage", *by_file, "--json")
    period = json.loads(usage.stdout)[0]["period"]
    invoice = cli(client_gateway, "invoice", period, *by_file, "--csv")
    assert invoice.returncode == 0 and invoice.stdout.startswith("line,") and "total" in invoice.stdout
    invoice_table = cli(client_gateway, "invoice", period, *by_file, "--table")
    assert invoice_table.returncode == 0 and "total" in invoice_table.stdout


def test_cli_errors(client_gateway: Gateway) -> None:
    by_file = ["--credentials-file", str(creds(client_gateway)), "--client-id", "demo-bank"]
    refused = cli(client_gateway, "query", "residents", "SELECT age, COUNT(*) FROM residents GROUP BY age",
                  "-e", "5", *by_file)
    assert refused.returncode == 1 and "policy_violation" in refused.stderr
    assert refused.stderr.count("\n  - ") == 2 and refused.stdout == ""
    missing = cli(client_gateway, "budget")
    assert missing.returncode == 2 and "client id" in missing.stderr
    unknown = cli(client_gateway, "budget", "--credentials-file", str(creds(client_gateway)), "--client-id", "nobody")
    assert unknown.returncode == 2 and "nobody" in unknown.stderr


def test_example_credit_risk_by_township(client_gateway: Gateway) -> None:
    env = {**os.environ, "GATEWAY_CREDENTIALS_FILE": str(creds(client_gateway))}
    env.pop("GATEWAY_CLIENT_ID", None)

    def example() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(ROOT / "examples" / "credit_risk_by_township.py")],
                              capture_output=True, text=True, timeout=300, env=env)

    run = example()
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    rows = [line for line in lines if line.split()[:1] and line.split()[0] in TOWNSHIP_NAMES]
    assert len(rows) == TOWNSHIPS
    for row in rows:
        intervals = re.findall(r"(\S+) \[(\S+), (\S+)\]", row)
        assert len(intervals) == 4
        assert all(float(lo) <= float(value) <= float(hi) for value, lo, hi in intervals)
    header = next(line.split() for line in lines if line.split()[:1] == ["township"])
    assert header == ["township", "adults", "mean_income", "median_income", "unemployed_pct", "vehicles_per_100",
                      "mean_vehicle_value"]
    with client(client_gateway, "demo-insurer") as gw:
        before = gw.budget()
        assert spent(gw, "residents") == 1.5 and spent(gw, "vehicles") == 0.5
        again = example()  # the same questions in the same month: the stored releases, no epsilon
        assert again.returncode == 0 and again.stderr.count("(cached)") == 3
        assert gw.budget() == before


@pytest.mark.slow
def test_the_client_installs_on_its_own(tmp_path: Path) -> None:
    """`pip install clients/python` needs nothing of the gateway: the wheel holds the package, its
    types and the command, depends on httpx alone, and imports from the wheel by itself."""
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path),
                            str(ROOT / "clients" / "python")], capture_output=True, text=True, timeout=600)
    if built.returncode != 0:
        pytest.skip(f"cannot build the wheel here (the build backend comes from the package index): {built.stderr}")
    wheel = next(tmp_path.glob("county_gateway_client-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(next(n for n in names if n.endswith("/METADATA"))).decode()
        entry_points = zf.read(next(n for n in names if n.endswith("/entry_points.txt"))).decode()
    assert {"gateway_client/py.typed", "gateway_client/client.py", "gateway_client/aio.py"} <= names
    assert not any(n.startswith("gateway/") for n in names)
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert [r for r in requires if "extra ==" not in r] == ["Requires-Dist: httpx<1,>=0.27"]
    assert "gateway-client = gateway_client.cli:main" in entry_points
    probe = ("import sys, gateway_client, gateway_client.cli; "
             "assert gateway_client.__file__.startswith(sys.argv[1]); "
             "assert not [m for m in sys.modules if m == 'gateway' or m.startswith('gateway.')]")
    imported = subprocess.run([sys.executable, "-c", probe, str(wheel)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(wheel)}, cwd=tmp_path, timeout=60)
    assert imported.returncode == 0, imported.stderr
