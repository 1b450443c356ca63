"""One table of settings (name, default, help) -> a frozen, validated `Settings`.

The table drives parsing (TOML file, then `GATEWAY_*` environment variables), the CLI and the
README's settings section; a test fails when a setting is not documented there.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def setting(default: Any, help: str, *, minimum: float | None = None) -> Any:
    """A field of `Settings` with its help text and lower bound (for parsing and the README)."""
    return field(default=default, metadata={"help": help, "minimum": minimum})


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    minimum: float | None = None


ENV_PREFIX = "GATEWAY_"


class SettingsError(ValueError):
    """A setting has a wrong name, type or value."""


@dataclass(frozen=True)
class Settings:
    """Every setting, its default and its help, written once; the table below is read from here."""

    host: str = setting("127.0.0.1", "Address the HTTP server binds to.")
    port: int = setting(8080, "Port of the HTTP server.", minimum=0)
    state_dir: str = setting("state", "Folder for the SQLite store, signing keys and demo data.")
    data_dir: str = setting("", "Root folder of dataset files; empty means STATE_DIR/data.")
    policies_dir: str = setting("", "Folder of dataset policies seeding the store; empty means the shipped ones.")
    store_dsn: str = setting("", "PostgreSQL DSN for shared state across replicas; empty means SQLite in STATE_DIR.")
    store_pool_size: int = setting(8, "Connections in the PostgreSQL pool.", minimum=1)
    issuer: str = setting("county-gateway", "The `iss` of tokens this gateway issues and accepts.")
    audience: str = setting("county-gateway", "The `aud` tokens must carry.")
    jwt_algorithms: str = setting("EdDSA", "Comma-separated JWT algorithms accepted (asymmetric only).")
    token_ttl_seconds: int = setting(900, "Lifetime of issued access tokens (at most 3600).", minimum=60)
    jwt_leeway_seconds: int = setting(30, "Clock skew tolerated on exp/nbf/iat (at most 60).", minimum=0)
    timezone: str = setting("Asia/Shanghai", "County time zone; budget periods are its calendar months.")
    max_body_bytes: int = setting(65536, "Largest request body accepted (413 above).", minimum=1024)
    max_upload_bytes: int = setting(2 * 1024**3, "Largest snapshot upload accepted.", minimum=1024)
    max_sql_chars: int = setting(8192, "Longest SQL text accepted.", minimum=64)
    sandbox_workers: int = setting(1, "Worker processes holding the data for releases.", minimum=1)
    query_timeout_seconds: float = setting(30.0, "Wall-time limit of one release in the sandbox.", minimum=0.1)
    worker_memory_mb: int = setting(8192, "Address-space limit of a sandbox worker.", minimum=256)
    streaming_engine: bool = setting(
        True, "Sandbox workers run releases on polars' streaming engine (in morsels; a step that cannot "
        "stream runs in memory): same answers, a fraction of the memory. false: the in-memory engine.")
    response_quantum_ms: int = setting(
        100, "DP answers are sent on this time quantum from the request start.", minimum=0)
    response_floor_ms: int = setting(300, "DP answers are never sent sooner than this.", minimum=0)
    idempotency_ttl_hours: int = setting(24, "How long Idempotency-Keys are kept (at least 24).", minimum=24)
    idempotency_max_keys: int = setting(
        100_000, "Idempotency-Keys (with their answers) one organisation may hold at once; 429 past it.", minimum=1)
    idempotency_purge_seconds: float = setting(
        600.0, "How often expired Idempotency-Keys are deleted in the background.", minimum=0.5)
    log_retention_days: int = setting(
        183, "Days audit entries and usage records stay in the live store at least (network logs: six months "
        "under the cybersecurity law; lower is refused). `gateway audit archive` moves only older entries.",
        minimum=183)
    processing_retention_days: int = setting(
        1095, "Days records of processing (queries, releases, receipts) are kept at least (three years under "
        "the personal-information law; lower is refused). Nothing removes them yet.", minimum=1095)
    audit_archive_dir: str = setting(
        "", "Folder of the signed audit archive files that `gateway audit archive` writes and `audit verify` "
        "and /v1/audit/verify check; empty means STATE_DIR/audit-archive.")
    agreement_sweep_seconds: float = setting(
        60.0, "How often authorisation agreements whose term has passed are ended (with what stands on them).",
        minimum=0.5)
    reservation_lease_seconds: int = setting(120, "Age after which an unfinished reservation is recovered.", minimum=1)
    commit_retry_seconds: float = setting(
        10.0, "How long a drawn answer waits for an unavailable store before its request fails with 503 "
        "(keep query_timeout_seconds plus this below reservation_lease_seconds).", minimum=0)
    rate_limit_per_second: float = setting(20.0, "Default requests per second per client (token bucket).", minimum=0.01)
    rate_limit_burst: int = setting(40, "Default bucket size per client.", minimum=1)
    rate_limit_backend: str = setting(
        "auto", "Where rate-limit buckets live: local (each replica's memory), store (the shared store), "
        "redis (rate_limit_redis_url); auto means store with a store_dsn, else local.")
    rate_limit_redis_url: str = setting("redis://127.0.0.1:6379/0", "Redis for rate_limit_backend = redis.")
    rate_limit_fail_open: bool = setting(
        True, "When the shared rate-limit buckets are unreachable, admit by each replica's own buckets "
        "(true) or refuse with 503 (false).")
    max_in_flight_per_client: int = setting(8, "Concurrent DP releases per client (never more than the release "
                                               "workers less one, so one client cannot hold them all).", minimum=1)
    preview_workers: int = setting(1, "Worker processes for previews only (no data), so previews never wait for "
                                      "the workers releases need.", minimum=1)
    preview_rate_per_second: float = setting(2.0, "Previews per second per client (token bucket).", minimum=0.01)
    preview_burst: int = setting(10, "Preview bucket size per client.", minimum=1)
    max_query_terms: int = setting(128, "Most WHERE terms (comparisons, IN, BETWEEN, AND, OR, NOT) one query may "
                                        "have (422 past it).", minimum=1)
    max_query_cells: int = setting(4000, "Most noisy aggregates x groups one query may release (422 past it).",
                                   minimum=1)
    max_quantile_candidates: int = setting(100000, "Most quantile candidates x groups, summed over a query's "
                                                   "quantiles and medians (422 past it).", minimum=1)
    release_cache_mb: int = setting(64, "Memory for stored releases kept per replica (answered again without a "
                                        "read).", minimum=1)
    token_failures_per_client: int = setting(
        10, "Failed token requests a client id may make in a row before 429 (R-AU-11).", minimum=1)
    token_failures_per_address: int = setting(
        50, "Failed token requests a source address may make in a row before 429.", minimum=1)
    token_failures_per_minute: float = setting(
        10.0, "How fast that allowance of failed token requests comes back.", minimum=0.01)
    trusted_proxies: str = setting(
        "", "Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed (source address of throttling, public URL of metadata).")
    metrics_host: str = setting("127.0.0.1", "Address of the optional separate metrics listener.")
    metrics_port: int = setting(0, "Port of a separate /metrics listener without auth; 0 disables it.", minimum=0)
    shutdown_grace_seconds: float = setting(20.0, "Time in-flight requests get to finish on SIGTERM.", minimum=0)
    suspension_poll_seconds: float = setting(
        0.5, "How often a replica re-reads dataset and requester status.", minimum=0.05)
    replica_id: str = setting("", "Name of this replica in logs; empty means host:port.")
    log_level: str = setting("INFO", "Log level: DEBUG, INFO, WARNING or ERROR.")
    currency: str = setting("CNY", "Currency of prices and invoices (ISO 4217).")
    registration_required: bool = setting(
        False, "Data products publish and sell only with a registration code valid for the version on sale "
        "(issue 16; docs/circulation.md).")
    revenue_refresh_seconds: float = setting(10.0, "How old the open month's revenue statements may be: built at "
                                                   "most once per this many seconds per replica.", minimum=0.1)
    console_idle_seconds: int = setting(1800, "A console session unused this long ends.", minimum=1)
    console_session_seconds: int = setting(43200, "A console session ends this long after sign-in, used or not.",
                                           minimum=1)
    console_secure_cookies: bool = setting(
        False, "Console cookies as `__Host-`, Secure, even without `X-Forwarded-Proto: https` (TLS in front).")

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir) if self.data_dir else self.state_path / "data"

    @property
    def audit_archive_path(self) -> Path:
        return Path(self.audit_archive_dir) if self.audit_archive_dir else self.state_path / "audit-archive"

    @property
    def shared_rate_limits(self) -> str:
        """"store", "redis", or "" for buckets in each replica's memory."""
        if self.rate_limit_backend == "auto":
            return "store" if self.store_dsn else ""
        return "" if self.rate_limit_backend == "local" else self.rate_limit_backend

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.jwt_algorithms.split(",") if a.strip())

    @property
    def proxies(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return tuple(ip_network(p.strip(), strict=False) for p in self.trusted_proxies.split(",") if p.strip())

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def replace(self, **changes: Any) -> Settings:
        return load_settings(values={**dataclasses.asdict(self), **changes})


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, f.default, f.metadata["help"], f.metadata["minimum"]) for f in dataclasses.fields(Settings))
_BY_NAME = {s.name: s for s in SETTINGS}
_ASYMMETRIC = {"EdDSA", "ES256", "ES384", "RS256", "PS256"}


def _coerce(setting: Setting, raw: Any) -> Any:
    kind = type(setting.default)
    try:
        if kind is bool:
            value: Any = raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes")
        elif kind is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            value = int(raw)
        elif kind is float:
            value = float(raw)
        else:
            if not isinstance(raw, str | int | float):
                raise ValueError
            value = str(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"setting {setting.name!r}: expected {kind.__name__}, got {raw!r}") from None
    if setting.minimum is not None and value < setting.minimum:
        raise SettingsError(f"setting {setting.name!r}: must be at least {setting.minimum}")
    return value


def _validate(s: Settings) -> None:
    bad = [a for a in s.algorithms if a not in _ASYMMETRIC]
    if bad or not s.algorithms:
        raise SettingsError(f"jwt_algorithms: only asymmetric algorithms are allowed, not {bad}")
    if s.token_ttl_seconds > 3600:
        raise SettingsError("token_ttl_seconds: at most 3600 (R-AU-02)")
    if s.jwt_leeway_seconds > 60:
        raise SettingsError("jwt_leeway_seconds: at most 60 (R-AU-02)")
    if s.rate_limit_backend not in ("auto", "local", "store", "redis"):
        raise SettingsError(f"rate_limit_backend: one of auto, local, store, redis, not {s.rate_limit_backend!r}")
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"log_level: unknown level {s.log_level!r}")
    try:
        ZoneInfo(s.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"timezone: unknown zone {s.timezone!r}") from None
    try:
        s.proxies  # noqa: B018 - parsed here so that a typo stops the start, not a request
    except ValueError as exc:
        raise SettingsError(f"trusted_proxies: {exc}") from None


def load_settings(path: str | Path | None = None, *, environ: Mapping[str, str] | None = None,
                  values: Mapping[str, Any] | None = None,
                  on_ignored: Callable[[str], None] | None = None) -> Settings:
    """Defaults, then the TOML file, then `GATEWAY_*` variables, then explicit `values`.

    A `GATEWAY_*` variable that names no setting belongs to someone else (CGI's
    GATEWAY_INTERFACE, a Kubernetes service link): it is ignored, and `on_ignored` told. One
    that nearly names a setting is a typo and stops the start, naming the setting meant.
    """
    merged: dict[str, Any] = {}
    if path is not None:
        with open(path, "rb") as fh:
            table = tomllib.load(fh)
        table = table.get("gateway", table)
        _refuse_unknown(table, "in the settings file")
        merged.update(table)
    merged.update(_from_environment(environ or {}, on_ignored))
    _refuse_unknown(values or {}, "given")
    merged.update(values or {})
    settings = Settings(**{name: _coerce(_BY_NAME[name], raw) for name, raw in merged.items()})
    _validate(settings)
    return settings


def _from_environment(environ: Mapping[str, str], on_ignored: Callable[[str], None] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, raw in sorted(environ.items()):
        # GATEWAY_TEST_* belong to the test suite, not to the server.
        if not key.startswith(ENV_PREFIX) or key.startswith(ENV_PREFIX + "TEST_"):
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name in _BY_NAME:
            found[name] = raw
            continue
        meant = near_miss(name)
        if meant is not None:
            raise SettingsError(f"{key} is not a setting: did you mean {ENV_PREFIX}{meant.upper()}?")
        if on_ignored is not None:
            on_ignored(f"ignoring {key}: not a gateway setting")
    return found


def _refuse_unknown(table: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(table) - set(_BY_NAME))
    if unknown:
        hints = [f"{n} (did you mean {near_miss(n)}?)" if near_miss(n) else n for n in unknown]
        raise SettingsError(f"unknown setting(s) {where}: {', '.join(hints)}")


def near_miss(name: str) -> str | None:
    """The setting a mistyped name most likely meant: one or two edits away (a transposed or
    missing letter), or very alike; None for names that are simply someone else's."""
    budget = 1 if len(name) <= 5 else 2
    close = [s.name for s in SETTINGS if _edits(name, s.name) <= budget]
    if close:
        return close[0]
    alike = difflib.get_close_matches(name, [s.name for s in SETTINGS], n=1, cutoff=0.85)
    return alike[0] if alike else None


def _edits(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions, transpositions."""
    if abs(len(a) - len(b)) > 2:
        return 3
    rows = [list(range(len(b) + 1))]
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            cost = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, rows[-2][j - 2] + 1)
            row.append(cost)
        rows.append(row)
    return rows[-1][-1]


def settings_markdown() -> str:
    """The README's settings table, one row per setting."""
    rows = [f"| `{s.name}` (`{ENV_PREFIX}{s.name.upper()}`) | `{s.default!r}` | {s.help} |" for s in SETTINGS]
    return "\n".join(rows)
