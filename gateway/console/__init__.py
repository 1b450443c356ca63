"""The web console for people: pages per role over the same service layer as the API."""

from gateway.console.app import setup_console

__all__ = ["setup_console"]
