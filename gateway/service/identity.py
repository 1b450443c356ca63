"""Issuing access tokens for the client-credentials grant."""

from __future__ import annotations

import asyncio

from gateway.auth.secrets import DUMMY_HASH, verify_secret
from gateway.errors import Unauthorized
from gateway.runtime.parts import Runtime
from gateway.store import audit, identity
from gateway.store.db import Tx


async def issue_token(runtime: Runtime, client_id: str, secret: str) -> tuple[str, int]:
    client = await runtime.store.read(identity.get_client, client_id)
    # scrypt is slow by design: run it off the event loop, and for unknown ids too (timing).
    ok = await asyncio.to_thread(verify_secret, secret, client.secret_hash if client else DUMMY_HASH)
    if client is None or not ok or not client.active:
        raise Unauthorized("The client credentials are not valid.")
    token, ttl = runtime.issuer.issue(client.client_id, client.org_id, client.roles)
    await runtime.store.write(_audit_token, client.client_id)
    runtime.metrics.token_issued(client.roles)
    return token, ttl


def _audit_token(tx: Tx, client_id: str) -> None:
    audit.append(tx, "token.issued", client_id, client_id)
