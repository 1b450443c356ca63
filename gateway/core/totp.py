"""TOTP (RFC 6238, HMAC-SHA1, 30 s steps, 6 digits), as authenticator apps compute it.

Pure: the secret and the time are passed in. A code from the step before or after is accepted
too, for clocks a little apart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import urllib.parse

STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1


def _key(secret: str) -> bytes:
    text = secret.strip().replace(" ", "").upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


def valid_secret(secret: str) -> bool:
    try:
        return len(_key(secret)) >= 10
    except (binascii.Error, ValueError):
        return False


def hotp(key: bytes, counter: int) -> str:
    """RFC 4226: dynamic truncation of HMAC-SHA1 over the big-endian counter."""
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def code_at(secret: str, unix_time: float) -> str:
    return hotp(_key(secret), int(unix_time // STEP_SECONDS))


def verify(secret: str, code: str, unix_time: float) -> bool:
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return False
    key = _key(secret)
    step = int(unix_time // STEP_SECONDS)
    return any(hmac.compare_digest(hotp(key, step + d), code) for d in range(-DRIFT_STEPS, DRIFT_STEPS + 1))


def secret_from_bytes(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// URI authenticator apps read (usually from a QR code)."""
    label = urllib.parse.quote(f"{issuer}:{account}")
    query = urllib.parse.urlencode({"secret": secret, "issuer": issuer, "digits": DIGITS, "period": STEP_SECONDS})
    return f"otpauth://totp/{label}?{query}"
