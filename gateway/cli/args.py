"""What every command shares: settings from --config, GATEWAY_* and flags; the state-folder flags;
opening the store of an existing installation; the one-line errors a command may end with."""

from __future__ import annotations

import argparse
import os
import sys

from gateway.settings import Settings, load_settings
from gateway.statefolder import require_folder
from gateway.store.db import Store
from gateway.store.schema import open_store


class CommandFailed(Exception):
    """A command stops with this message (one line, no traceback) and exit status 1."""


def settings_of(args: argparse.Namespace, **overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    return load_settings(getattr(args, "config", None), environ=os.environ, values=values, on_ignored=_warn)


def _warn(message: str) -> None:
    print(f"gateway: {message}", file=sys.stderr)


def existing_store(settings: Settings) -> Store:
    """The store of an installation that exists: a maintenance command never creates one (nor
    its state folder) because --state-dir was mistyped or left at its default."""
    require_folder(settings.state_path)
    return open_store(settings.store_dsn, settings.state_path, pool_size=2, create=False)


def state_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML settings file")
    parser.add_argument("--state-dir")
