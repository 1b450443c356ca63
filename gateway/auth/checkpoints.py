"""Signed checkpoints of the audit chain: (seq, head hash, time) signed with a gateway key, kept
outside the database (R-AD-04), so that a rewritten log cannot also rewrite its checkpoint."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidSignature

from gateway.auth.tokens import SigningKey
from gateway.clock import utc_now_text
from gateway.core.canonical import canonical_bytes


def _signed_body(seq: int, head: str, at: str) -> bytes:
    return canonical_bytes({"seq": seq, "head": head, "at": at})


def sign_checkpoint(key: SigningKey, seq: int, head: str) -> dict[str, Any]:
    at = utc_now_text()
    signature = key.private.sign(_signed_body(seq, head, at))
    return {"seq": seq, "head": head, "at": at, "kid": key.kid, "signature": base64.b64encode(signature).decode()}


def verify_checkpoint(data: dict[str, Any], keys: Iterable[SigningKey]) -> tuple[int, str]:
    """The (seq, head) of a checkpoint whose signature holds under one of `keys`; else ValueError."""
    try:
        body = _signed_body(int(data["seq"]), str(data["head"]), str(data["at"]))
        signature = base64.b64decode(data["signature"])
    except (KeyError, TypeError, ValueError):
        raise ValueError("the checkpoint is malformed") from None
    for key in keys:
        if key.kid == data.get("kid"):
            try:
                key.private.public_key().verify(signature, body)
            except InvalidSignature:
                break
            return int(data["seq"]), str(data["head"])
    raise ValueError("the checkpoint's signature does not verify")
