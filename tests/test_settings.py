"""Settings: one table, validated, and documented in the README."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import SETTINGS, SettingsError, load_settings, settings_markdown

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text()
    missing = [s.name for s in SETTINGS if f"| `{s.name}` (`GATEWAY_{s.name.upper()}`)" not in text]
    assert not missing, f"undocumented settings: {missing}"
    assert settings_markdown() in text, "README settings table is stale: regenerate it from settings_markdown()"


def test_file_then_environment_then_values(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text('port = 9000\nissuer = "file"\n[unused]\n'.replace("[unused]\n", ""))
    s = load_settings(cfg, environ={"GATEWAY_ISSUER": "env", "GATEWAY_TEST_POSTGRES_DSN": "x"},
                      values={"host": "0.0.0.0"})
    assert (s.port, s.issuer, s.host) == (9000, "env", "0.0.0.0")


@pytest.mark.parametrize("env", [
    {"GATEWAY_PORT": "eighty"},
    {"GATEWAY_PROT": "8080"},  # a near miss of `port`; unrelated names are ignored (test_cli_state.py)
    {"GATEWAY_JWT_ALGORITHMS": "HS256"},
    {"GATEWAY_TOKEN_TTL_SECONDS": "7200"},
    {"GATEWAY_TIMEZONE": "Mars/Olympus"},
    {"GATEWAY_MAX_BODY_BYTES": "10"},
])
def test_bad_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        load_settings(environ=env)
