"""Logging for `gateway serve`: plain lines to stderr, with credentials masked in every record.

Our own lines never carry a token or secret (they are built from named fields); this filter is
the second line for text we do not build: exception messages and tracebacks of libraries, which
may quote a request (R-IN-09, R-OP-05).
"""

from __future__ import annotations

import logging
import re
import sys

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_SCHEME = re.compile(r"(?i)\b(bearer|basic)(\s+|%20)[A-Za-z0-9._~+/=-]+")
_FORM_SECRET = re.compile(r"(?i)(client_secret|password|secret)=[^&\s'\"]+")
MASK = "[redacted]"
_TRUSTED = frozenset({"gateway.access"})  # built from named fields only; skipped for speed


def redact(text: str) -> str:
    text = _JWT.sub(MASK, text)
    text = _SCHEME.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _FORM_SECRET.sub(lambda m: f"{m.group(1)}={MASK}", text)


class RedactCredentials(logging.Filter):
    """Masks bearer tokens, Basic credentials, JWTs and form secrets in the message, the
    formatted traceback and the stack of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name in _TRUSTED:
            return True
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactCredentials) for f in handler.filters):
            handler.addFilter(RedactCredentials())
