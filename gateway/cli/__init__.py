"""The `gateway` command line: one module per command group; `main` parses and dispatches.

`run` and `main` import the commands only when called. The installed `gateway` script imports
this package, and so does every sandbox worker and snapshot preparation the server spawns
(multiprocessing's spawn re-imports the parent's main script): importing every command there
(aiohttp, the console, the store) cost each child ~0.9 s of its start.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from gateway.cli.main import main as parse_and_run

    return parse_and_run(argv)


def run() -> None:
    from gateway.cli.main import run as run_command

    run_command()


__all__ = ["main", "run"]
