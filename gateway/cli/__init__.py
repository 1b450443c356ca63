"""The `gateway` command line: one module per command group; `main` parses and dispatches."""

from gateway.cli.main import main

__all__ = ["main"]
