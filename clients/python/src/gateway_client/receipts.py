"""Checking a gateway receipt offline: a compact JWS (EdDSA) over the canonical JSON of a release.

Needs the `receipts` extra (`cryptography`). Retired keys (the JWKS's `retired_keys`) still verify
the receipts they signed: a key's retirement stops it signing, not what it signed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any


class ReceiptInvalid(ValueError):
    """The receipt is malformed, names a key not in the JWKS, or its signature does not verify."""


def _b64(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except ValueError:
        raise ReceiptInvalid("a part of the receipt is not base64url") from None


def verify_receipt(receipt: str, jwks: Mapping[str, Any]) -> dict[str, Any]:
    """The receipt's claims (query id, released values, epsilon, ...) once its signature verifies."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("verify_receipt needs: pip install 'county-gateway-client[receipts]'") from exc
    parts = receipt.strip().split(".")
    if len(parts) != 3:
        raise ReceiptInvalid("a receipt is a compact JWS: three base64url parts")
    try:
        header = json.loads(_b64(parts[0]))
        claims = json.loads(_b64(parts[1]))
    except ValueError:
        raise ReceiptInvalid("the receipt's header or payload is not JSON") from None
    if not isinstance(header, dict) or header.get("alg") != "EdDSA" or not isinstance(claims, dict):
        raise ReceiptInvalid("a receipt is an EdDSA-signed JSON object")
    published = [*jwks.get("keys", []), *jwks.get("retired_keys", [])]
    key = next((k for k in published if isinstance(k, dict) and k.get("kid") == header.get("kid")), None)
    if key is None or key.get("crv") != "Ed25519":
        raise ReceiptInvalid("the receipt's key is not in the JWKS")
    try:
        Ed25519PublicKey.from_public_bytes(_b64(key["x"])).verify(_b64(parts[2]), f"{parts[0]}.{parts[1]}".encode())
    except (InvalidSignature, ValueError, KeyError):
        raise ReceiptInvalid("the receipt's signature does not verify") from None
    return claims
