"""What every command shares: settings from --config, GATEWAY_* and flags; the state-folder flags."""

from __future__ import annotations

import argparse
import os

from gateway.settings import Settings, load_settings


def settings_of(args: argparse.Namespace, **overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    return load_settings(getattr(args, "config", None), environ=os.environ, values=values)


def state_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML settings file")
    parser.add_argument("--state-dir")
