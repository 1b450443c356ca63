"""Test helpers: a real `gateway serve` process on a loopback port, and a small HTTP client."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
# Rate limits that a test's own traffic never meets.
FAST_RATES = {"GATEWAY_RATE_LIMIT_PER_SECOND": "1000", "GATEWAY_RATE_LIMIT_BURST": "2000"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        return {k.lower(): v for k, v in self.headers.items()}.get(name.lower())

    @property
    def is_problem(self) -> bool:
        ctype = self.header("content-type") or ""
        js = self.json
        return ctype.startswith("application/problem+json") and js.get("status") == self.status


def call(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 120) -> Reply:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Reply(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, dict(e.headers), e.read())


def seed_demo_data(state_dir: Path, source: Path) -> None:
    """Copy pre-generated demo Parquet files into a state folder (saves regenerating them)."""
    data = state_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    for f in source.glob("*.parquet"):
        target = data / f.name
        if not target.exists():
            shutil.copyfile(f, target)


def demo_gateway(state_dir: Path, demo_data: Path, *, env: dict[str, str] | None = None,
                 extra: list[str] | None = None) -> Gateway:
    """The one way tests make a real gateway: demo data seeded into `state_dir`, a `gateway serve
    --demo` process not yet started (`with demo_gateway(...) as gw:` starts and stops it)."""
    seed_demo_data(state_dir, demo_data)
    return Gateway(state_dir, extra=list(extra or []), env=dict(env or {}))


@dataclass
class Gateway:
    """`gateway serve --demo` (or with extra args) as a child process."""

    state_dir: Path
    extra: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    log_file: Path | None = None  # where the server's output goes; STATE_DIR/server.log if None

    @property
    def log_path(self) -> Path:
        return self.log_file or self.state_dir / "server.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> Gateway:
        self.port = self.port or free_port()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        cmd = [str(BIN / "gateway"), "serve", "--demo", "--host", "127.0.0.1", "--port", str(self.port),
               "--state-dir", str(self.state_dir), *self.extra]
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited {self.proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError):
                if call("GET", self.base + "/readyz", timeout=2).status == 200:
                    self.tokens.clear()
                    return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("gateway did not become ready: " + self.log_tail())

    def log_tail(self, n: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-n:]
        return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def __enter__(self) -> Gateway:
        return self if self.proc is not None else self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def credentials(self) -> dict[str, dict[str, Any]]:
        data = json.loads((self.state_dir / "demo-credentials.json").read_text())
        return {c["client_id"]: c for c in data["clients"]}

    def token(self, client_id: str) -> str:
        """A cached token, fetched anew once it is past half its life (a long session outlives
        `token_ttl_seconds`, and the gateway says "expired" then)."""
        cached = self.tokens.get(client_id)
        if cached is not None:
            claims = jwt_parts(cached)[1]
            if time.time() > (claims["iat"] + claims["exp"]) / 2:
                del self.tokens[client_id]
        if client_id not in self.tokens:
            c = self.credentials[client_id]
            r = self.form("/oauth/token", {"grant_type": "client_credentials", "client_id": client_id,
                                           "client_secret": c["client_secret"]})
            assert r.status == 200, (r.status, r.body)
            self.tokens[client_id] = r.json["access_token"]
        return self.tokens[client_id]

    def form(self, path: str, fields: dict[str, str], headers: dict[str, str] | None = None) -> Reply:
        return call("POST", self.base + path, urllib.parse.urlencode(fields).encode(),
                    {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})

    def api(self, method: str, path: str, client: str | None = None, body: Any = None,
            headers: dict[str, str] | None = None) -> Reply:
        h = dict(headers or {})
        if client:
            h["Authorization"] = "Bearer " + self.token(client)
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        return call(method, self.base + path, data, h)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    h, p, s = token.split(".")
    pad = lambda x: x + "=" * (-len(x) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(h))), json.loads(base64.urlsafe_b64decode(pad(p))), s


def agreement_body(datasets: list[str], products: list[str] | None = None, *, days: int = 365,
                   starts_in: int = 0) -> dict[str, Any]:
    """A valid authorisation agreement's body: in force from today (county time) for `days` days."""
    import datetime as dt
    import hashlib
    from zoneinfo import ZoneInfo

    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    return {"authorising_body": "Lingxi County People's Government", "operator": "datasmith",
            "datasets": datasets, "product_ids": products or [],
            "starts_on": (today + dt.timedelta(days=starts_in)).isoformat(),
            "ends_on": (today + dt.timedelta(days=starts_in + days)).isoformat(),
            "duties": "Serve the data only through the gateway.", "exit_terms": "Everything standing on it ends.",
            "document_sha256": hashlib.sha256(json.dumps(datasets + (products or [])).encode()).hexdigest()}


def record_agreement(gw: Gateway, datasets: list[str], products: list[str] | None = None, **terms: int) -> str:
    """The bureau records an agreement (a new product is published only under one that lists it)."""
    r = gw.api("POST", "/v1/agreements", "demo-bureau", agreement_body(datasets, products, **terms))
    assert r.status == 201, (r.status, r.body)
    return str(r.json["agreement_id"])
