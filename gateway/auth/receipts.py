"""Signed receipts: a compact JWS (EdDSA, the gateway's signing key and `kid`) over the canonical
JSON of a release, so that anyone holding the JWKS can check offline that the gateway issued
exactly these numbers. Signing and verifying live here; what a receipt says is the service's.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.auth.tokens import SigningKey
from gateway.core.canonical import canonical_bytes

RECEIPT_TYPE = "receipt+jws"


class ReceiptInvalid(ValueError):
    """A receipt that is malformed, names an unknown key, or whose signature does not verify."""


def sign_receipt(claims: Mapping[str, Any], key: SigningKey, typ: str = RECEIPT_TYPE) -> str:
    """The compact JWS of the claims' canonical JSON (the payload bytes are what is signed); `typ`
    tells other signed documents (audit archive manifests) from receipts."""
    return jwt.api_jws.encode(canonical_bytes(dict(claims)), key.private, algorithm="EdDSA",
                              headers={"kid": key.kid, "typ": typ})


def _b64decode(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (ValueError, TypeError):
        raise ReceiptInvalid("a part of the receipt is not base64url") from None


def verify_receipt(receipt: str, jwks: Mapping[str, Any], typ: str | None = None) -> dict[str, Any]:
    """The receipt's claims, after its signature verifies with a key of `jwks` (retired ones
    included: a key's retirement stops it signing, not the receipts it signed); with `typ`, the
    header must name that type."""
    parts = receipt.strip().split(".")
    if len(parts) != 3:
        raise ReceiptInvalid("a receipt is a compact JWS: three base64url parts")
    try:
        header = json.loads(_b64decode(parts[0]))
    except ValueError:
        raise ReceiptInvalid("the receipt's header is not JSON") from None
    if not isinstance(header, dict) or header.get("alg") != "EdDSA":
        raise ReceiptInvalid("a receipt is signed with EdDSA")
    if typ is not None and header.get("typ") != typ:
        raise ReceiptInvalid(f"the signed document is not of type {typ}")
    published = [*jwks.get("keys", []), *jwks.get("retired_keys", [])]
    keys = [k for k in published if isinstance(k, dict) and k.get("kid") == header.get("kid")]
    if not keys or keys[0].get("kty") != "OKP" or keys[0].get("crv") != "Ed25519":
        raise ReceiptInvalid("the receipt's key is not in the JWKS")
    public = Ed25519PublicKey.from_public_bytes(_b64decode(keys[0]["x"]))
    try:
        public.verify(_b64decode(parts[2]), f"{parts[0]}.{parts[1]}".encode())
    except (InvalidSignature, ValueError):
        raise ReceiptInvalid("the receipt's signature does not verify") from None
    try:
        claims = json.loads(_b64decode(parts[1]))
    except ValueError:
        raise ReceiptInvalid("the receipt's payload is not JSON") from None
    if not isinstance(claims, dict):
        raise ReceiptInvalid("the receipt's payload is not a JSON object")
    return claims
