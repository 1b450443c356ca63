"""The `gateway` command line: one module per command group; `main` parses and dispatches."""

from gateway.cli.main import main, run

__all__ = ["main", "run"]
