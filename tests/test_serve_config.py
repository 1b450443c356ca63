"""`gateway serve --config FILE` without --demo: a real county's start, its first client from the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.support import BIN, call, free_port, seed_demo_data


def test_serve_from_a_config_file(tmp_path: Path, demo_data: Path) -> None:
    state, port = tmp_path / "state", free_port()
    seed_demo_data(state, demo_data)
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway]\nhost = "127.0.0.1"\nport = {port}\nstate_dir = "{state}"\n'
                      f'data_dir = "{state / "data"}"\nresponse_floor_ms = 0\n')
    out = subprocess.run([str(BIN / "gateway"), "client", "add", "--config", str(config), "--org", "bureau",
                          "--role", "bureau", "bureau-admin"], capture_output=True, text=True, check=True)
    secret = out.stdout.strip().splitlines()[-1]
    proc = subprocess.Popen([str(BIN / "gateway"), "serve", "--config", str(config)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if call("GET", base + "/readyz", timeout=2).status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert not (state / "demo-credentials.json").exists(), "no demo clients without --demo"
        import urllib.parse

        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": "bureau-admin",
                                       "client_secret": secret}).encode()
        token = call("POST", base + "/oauth/token", form,
                     {"Content-Type": "application/x-www-form-urlencoded"}).json["access_token"]
        catalog = call("GET", base + "/v1/datasets", headers={"Authorization": "Bearer " + token})
        assert catalog.status == 200 and len(catalog.json["datasets"]) == 4
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(60) == 0
