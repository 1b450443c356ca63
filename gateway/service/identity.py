"""Issuing access tokens for the client-credentials grant."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gateway.auth.secrets import DUMMY_HASH, verify_secret
from gateway.clock import utc_now_text
from gateway.errors import InvalidClient
from gateway.runtime.parts import Runtime
from gateway.store import audit, identity
from gateway.store.db import Tx

SECRET_CHECK_THREADS = 2


class SecretChecks:
    """scrypt (~16 MiB, tens of ms, by design) on threads of its own: on the default executor it
    queued behind snapshot builds, and a burst of guesses held up their work."""

    def __init__(self, runtime: Runtime) -> None:
        self.pool = ThreadPoolExecutor(SECRET_CHECK_THREADS, thread_name_prefix="secret-check")

    async def verify(self, secret: str, stored: str) -> bool:
        return await asyncio.get_running_loop().run_in_executor(self.pool, verify_secret, secret, stored)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


async def issue_token(runtime: Runtime, client_id: str, secret: str) -> tuple[str, int]:
    client = await runtime.store.read(identity.get_client, client_id, op="read_client")
    # An unknown id is checked against a dummy hash of the same cost: timing does not tell
    # which ids exist, and a guess costs the guesser as much whichever id it names.
    ok = await runtime.owned(SecretChecks).verify(secret, client.secret_hash if client else DUMMY_HASH)
    if client is None or not ok or not client.active:
        raise InvalidClient()
    token, ttl = runtime.issuer.issue(client.client_id, client.org_id, client.roles)
    # Known active from now on this replica, though another process (the command line, another
    # replica) added it since the last status poll; a later suspension reaches it as before.
    runtime.registry.clients[client.client_id] = True
    await runtime.store.write(_audit_token, client.client_id, op="append_audit")
    runtime.metrics.token_issued(client.roles)
    return token, ttl


async def published_keys(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    """The JWKS: `keys` verify tokens now; `retired_keys` only the receipts they signed before."""
    now = utc_now_text()
    keys = await runtime.store.read(identity.public_keys, now)
    retired = await runtime.store.read(identity.retired_keys, now)
    return {"keys": list(keys.values()), "retired_keys": retired}


def _audit_token(tx: Tx, client_id: str) -> None:
    audit.append(tx, "token.issued", client_id, client_id)
