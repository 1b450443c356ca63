"""A client generated from the served OpenAPI document works: openapi-python-client, installed in a
temporary virtual environment, generates a package from `/openapi.json`, and that package gets the
catalog, a preview and a query from a real gateway, parsed into its typed models (the crash of
issue 13: `KeyError: 'type'` on `rows.items`, an enum clashing with a component, no token URL)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import venv
from pathlib import Path

import pytest

from tests.support import Gateway, call

pytestmark = pytest.mark.slow  # a virtual environment and a pip install: about a minute

GENERATOR = "openapi-python-client>=0.24,<1"
# Bodies no Python generator models (a policy in YAML, a snapshot in Parquet or CSV) go as bytes;
# no formatter is run on the output (none is installed in the temporary environment).
CONFIG = """
post_hooks: []
content_type_overrides:
  application/vnd.apache.parquet: application/octet-stream
  application/x-parquet: application/octet-stream
  text/csv: application/octet-stream
  application/yaml: application/octet-stream
  application/x-yaml: application/octet-stream
  text/yaml: application/octet-stream
"""

SCRIPT = textwrap.dedent("""
    import json, sys
    import httpx
    from county_data_gateway_client import AuthenticatedClient
    from county_data_gateway_client.api.datasets import list_datasets
    from county_data_gateway_client.api.queries import post_preview, post_query
    from county_data_gateway_client.models import Preview, QueryAnswer, QueryIn

    base, secret = sys.argv[1], sys.argv[2]
    token = httpx.post(base + "/oauth/token", data={"grant_type": "client_credentials", "client_id": "demo-bank",
                                                    "client_secret": secret}).json()["access_token"]
    client = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)
    catalog = list_datasets.sync(client=client)
    names = [d.id for d in catalog.datasets]
    residents = next(d for d in catalog.datasets if d.id == "residents")
    body = QueryIn(dataset="residents", epsilon=0.1,
                   sql="SELECT township, COUNT(*) AS n FROM residents GROUP BY township")
    preview = post_preview.sync(client=client, body=body)
    answer = post_query.sync(client=client, body=body)
    assert isinstance(preview, Preview) and isinstance(answer, QueryAnswer), (type(preview), type(answer))
    print(json.dumps({"datasets": names, "status": residents.status.value, "would_fit": preview.would_fit,
                      "columns": answer.columns, "rows": len(answer.rows), "first": answer.rows[0],
                      "epsilon_spent": answer.epsilon_spent, "remaining": answer.budget.epsilon_remaining,
                      "half_width": answer.accuracy.columns["n"]}))
""")


def _run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the generator (which brings httpx and attrs, all a generated client needs)."""
    home = tmp_path_factory.mktemp("generator")
    venv.create(home / "venv", with_pip=True)
    python = home / "venv" / "bin" / "python"
    installed = _run([str(python), "-m", "pip", "install", "-q", GENERATOR], home)
    if installed.returncode != 0:
        pytest.skip(f"openapi-python-client could not be installed: {installed.stderr.strip()[-300:]}")
    return python


def test_a_generated_client_reads_the_catalog_previews_and_queries(gateway: Gateway, generator: Path,
                                                                   tmp_path: Path) -> None:
    spec = call("GET", gateway.base + "/openapi.json")
    (tmp_path / "openapi.json").write_bytes(spec.body)
    (tmp_path / "config.yml").write_text(CONFIG)
    made = _run([str(generator.parent / "openapi-python-client"), "generate", "--path", "openapi.json",
                 "--config", "config.yml", "--output-path", "generated", "--overwrite"], tmp_path)
    said = made.stdout + made.stderr
    assert made.returncode == 0 and "warning" not in said.lower() and "error" not in said.lower(), said[-2000:]
    secret = gateway.credentials["demo-bank"]["client_secret"]
    ran = _run([str(generator), "-c", SCRIPT, gateway.base, secret], tmp_path / "generated")
    assert ran.returncode == 0, ran.stderr[-2000:]
    out = json.loads(ran.stdout.strip().splitlines()[-1])
    assert "residents" in out["datasets"] and out["status"] == "active" and out["would_fit"] is True
    assert out["columns"] == ["township", "n"] and out["rows"] == 20
    assert isinstance(out["first"][0], str) and isinstance(out["first"][1], int | float)
    assert out["epsilon_spent"] == pytest.approx(0.1) and out["half_width"] > 0
