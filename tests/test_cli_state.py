"""The command line against the state it is pointed at (issue 12, points 4, 5, 6 and 9).

One server per SQLite state folder; maintenance commands that find no state say so and create
nothing; errors are one line, never a traceback; stray GATEWAY_* variables are ignored unless
they are typos of a setting; a busy port is refused before any demo data is made; the start
says where the gateway serves, from which folder, with which credentials file.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.settings import SettingsError, load_settings, near_miss
from gateway.statefolder import StateFolderBusy, state_lock
from tests.support import BIN, Gateway, call, free_port

GATEWAY = str(BIN / "gateway")


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_") or k.startswith("GATEWAY_TEST_")}
    return subprocess.run([GATEWAY, *args], capture_output=True, text=True, timeout=timeout,
                          env={**clean, **(env or {})})


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("gateway: "), done.stderr
    return lines[0]


# ------------------------------------------------------------------ point 4: one server per folder

def test_the_lock_names_its_holder_and_goes_with_it(tmp_path: Path) -> None:
    with state_lock(tmp_path):
        with pytest.raises(StateFolderBusy) as busy, state_lock(tmp_path):
            pass
        assert str(tmp_path.resolve()) in str(busy.value) and f"pid {os.getpid()}" in str(busy.value)
    with state_lock(tmp_path):  # released at the end of the block
        pass


def test_a_second_server_on_the_same_state_folder_stops_at_once(gateway: Gateway) -> None:
    credentials = gateway.state_dir / "demo-credentials.json"
    before = hashlib.sha256(credentials.read_bytes()).hexdigest()
    log_size = (gateway.state_dir / "server.log").stat().st_size
    second = run("serve", "--demo", "--host", "127.0.0.1", "--port", str(free_port()),
                 "--state-dir", str(gateway.state_dir), timeout=60)
    line = one_line_error(second)
    assert str(gateway.state_dir.resolve()) in line and f"pid {gateway.proc.pid}" in line, line  # type: ignore[union-attr]
    assert call("GET", gateway.base + "/readyz").status == 200
    assert hashlib.sha256(credentials.read_bytes()).hexdigest() == before
    # The first server saw nothing of it (no recovery of its queries "interrupted" by a stranger).
    assert "recovered" not in (gateway.state_dir / "server.log").read_text()[log_size:]


# ------------------------------------------------------------------ point 5: state that is not there

@pytest.mark.parametrize("command", [
    ("audit", "verify"), ("audit", "checkpoint", "--out", "{tmp}/cp.json"), ("keys", "rotate"),
    ("invoice", "--period", "2026-01"), ("policy", "apply", "{policy}"), ("client", "add", "--org", "o",
                                                                          "--role", "bureau", "c1"),
    ("user", "add", "--org", "o", "--role", "bureau", "u1"),
])
def test_maintenance_commands_refuse_a_missing_state_folder(tmp_path: Path, command: tuple[str, ...],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-state"
    policy = Path(__file__).resolve().parent.parent / "policies" / "residents.yaml"
    args = [a.format(tmp=tmp_path, policy=policy) for a in command]
    status = main([*args, "--state-dir", str(missing)])
    err = capsys.readouterr().err
    assert status != 0 and "no state folder" in err and str(missing) in err, err
    assert not missing.exists()


@pytest.mark.parametrize("command", [("audit", "verify"), ("keys", "rotate"), ("invoice", "--period", "2026-01")])
def test_an_empty_folder_is_no_installation(tmp_path: Path, command: tuple[str, ...],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--state-dir", str(tmp_path)]) != 0
    assert "no gateway store" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no store, no keyring


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    assert main(["client", "add", "--org", "lender", "--role", "requester", "lender-1", "--state-dir", str(state)]) == 0
    return state


def test_cli_errors_are_one_line(installed: Path, tmp_path: Path) -> None:
    state = str(installed)
    cases = {
        "existing client": run("client", "add", "--org", "lender", "--role", "requester", "lender-1",
                               "--state-dir", state),
        "missing config": run("serve", "--config", str(tmp_path / "nope.toml")),
        "missing checkpoint": run("audit", "verify", "--state-dir", state, "--checkpoint", str(tmp_path / "no.json")),
        "not a checkpoint": run("audit", "verify", "--state-dir", state, "--checkpoint", __file__),
        "unknown org": run("invoice", "--period", "2026-01", "--org", "nosuch", "--state-dir", state),
        "unreachable target": run("store", "migrate", "--state-dir", state, "--to", "postgresql://u:pw@127.0.0.1:1/x"),
        "missing policy": run("policy", "apply", str(tmp_path / "nope.yaml"), "--state-dir", state),
    }
    lines = {name: one_line_error(done) for name, done in cases.items()}
    assert "already exists" in lines["existing client"]
    assert "nope.toml" in lines["missing config"]
    assert "no.json" in lines["missing checkpoint"]
    assert "nosuch" in lines["unknown org"]
    target = lines["unreachable target"]
    assert "refused" in target.lower() and "pw" not in target.replace("postgresql", ""), target


def test_a_busy_port_is_one_line_before_any_demo_data(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = run("serve", "--demo", "--host", "127.0.0.1", "--port", str(port), "--state-dir", str(tmp_path / "s"),
                   timeout=60)
    line = one_line_error(done)
    assert str(port) in line and "--port" in line, line
    assert not (tmp_path / "s" / "data").exists() and not (tmp_path / "s" / "gateway.db").exists()


# ------------------------------------------------------------------ point 6: stray environment

def test_unrelated_gateway_variables_are_ignored_with_a_warning(installed: Path) -> None:
    done = run("audit", "verify", "--state-dir", str(installed),
               env={"GATEWAY_INTERFACE": "CGI/1.1", "GATEWAY_SERVICE_PORT": "8080", "GATEWAY_PORT_8080_TCP": "tcp://x"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok:")
    assert "ignoring GATEWAY_INTERFACE" in done.stderr and "ignoring GATEWAY_SERVICE_PORT" in done.stderr


@pytest.mark.parametrize(("variable", "meant"), [
    ("GATEWAY_PROT", "GATEWAY_PORT"), ("GATEWAY_STAT_DIR", "GATEWAY_STATE_DIR"),
    ("GATEWAY_METRIC_PORT", "GATEWAY_METRICS_PORT"), ("GATEWAY_LOGLEVEL", "GATEWAY_LOG_LEVEL"),
    ("GATEWAY_TIME_ZONE", "GATEWAY_TIMEZONE"),
])
def test_a_near_miss_stops_the_start_naming_the_setting_meant(installed: Path, variable: str, meant: str) -> None:
    with pytest.raises(SettingsError, match=meant):
        load_settings(environ={variable: "1"})
    done = run("serve", "--state-dir", str(installed), "--port", str(free_port()), env={variable: "1"}, timeout=60)
    assert done.returncode != 0 and meant in done.stderr and "Traceback" not in done.stderr


def test_names_of_other_software_are_no_near_misses() -> None:
    for name in ("interface", "service_host", "service_port", "port_8080_tcp", "port_8080_tcp_addr", "hostname",
                 "url", "token", "replica"):
        assert near_miss(name) is None, name


# ------------------------------------------------------------------ point 9: the start line

def test_the_start_prints_one_human_line(gateway: Gateway) -> None:
    text = (gateway.state_dir / "server.log").read_text(errors="replace")
    lines = [line for line in text.splitlines() if line.startswith("county gateway serving")]
    assert len(lines) >= 1, text[-500:]
    line = lines[0]
    assert gateway.base in line and str(gateway.state_dir.resolve()) in line
    assert str((gateway.state_dir / "demo-credentials.json").resolve()) in line
