"""The token endpoint as OAuth 2.0 says (RFC 6749 §2.3.1, §4.4, §5.1, §5.2) and the
authorization-server metadata that points clients at it (RFC 8414).

Errors keep our problem shape and add §5.2's `error` and `error_description`, so an OAuth
client reads a refusal as one; `invalid_client` is 401 with a Basic challenge (never the
resource server's Bearer one). Failed attempts are throttled in `token_guard`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web
from multidict import MultiDictProxy

from gateway.errors import (
    GatewayError,
    InvalidClient,
    InvalidTokenRequest,
    PayloadTooLarge,
    TokenError,
    UnsupportedGrantType,
    UnsupportedMediaType,
)
from gateway.http.keys import RUNTIME
from gateway.http.peers import public_origin
from gateway.http.token_guard import token_attempt
from gateway.service.identity import issue_token

TOKEN_PATH = "/oauth/token"
JWKS_PATH = "/.well-known/jwks.json"
METADATA_PATH = "/.well-known/oauth-authorization-server"
GRANT = "client_credentials"
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM = "application/x-www-form-urlencoded"


async def token_response(request: web.Request) -> web.Response:
    """An access token for the client-credentials grant, or a §5.2 error."""
    try:
        form = await _form(request)
        grant = _single(form, "grant_type")
        if grant is None:
            raise InvalidTokenRequest("grant_type is required")
        if grant != GRANT:
            raise UnsupportedGrantType(f"this server issues tokens for the {GRANT} grant only")
        client_id, secret = _credentials(request, form)
        with token_attempt(request, client_id):
            access, ttl = await issue_token(request.app[RUNTIME], client_id, secret)
    except TokenError:
        raise
    except GatewayError as exc:
        raise _as_token_error(exc) from None
    return web.json_response({"access_token": access, "token_type": "Bearer", "expires_in": ttl}, headers=NO_STORE)


def _as_token_error(exc: GatewayError) -> GatewayError:
    """Any other refusal on this endpoint (415, 413, 503...) with §5.2's members too."""
    exc.extra.update({"error": "invalid_request" if exc.status < 500 else "temporarily_unavailable",
                      "error_description": exc.detail})
    exc.headers.update(NO_STORE)
    return exc


async def _form(request: web.Request) -> MultiDictProxy[Any]:
    if request.content_type != FORM:
        raise UnsupportedMediaType("send the token request form-encoded (application/x-www-form-urlencoded)")
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge("The request body is over the configured limit.") from None
    repeated = sorted(k for k in set(form) if len(form.getall(k)) > 1)
    if repeated:  # §3.2: parameters MUST NOT be included more than once
        raise InvalidTokenRequest(f"parameter(s) sent more than once: {', '.join(repeated)}")
    return form


def _single(form: MultiDictProxy[Any], name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def _credentials(request: web.Request, form: MultiDictProxy[Any]) -> tuple[str, str]:
    """HTTP Basic (§2.3.1, preferred) or client_id and client_secret in the form; not both."""
    posted_id, posted_secret = _single(form, "client_id"), _single(form, "client_secret")
    header = request.headers.get("Authorization")
    if header is None:
        if posted_id is None or posted_secret is None:
            raise InvalidClient("Client authentication is required: HTTP Basic, or client_id and "
                                "client_secret in the form.")
        return posted_id, posted_secret
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("Authenticate the client with HTTP Basic (or client_id and client_secret in the form).")
    if posted_secret is not None:
        raise InvalidTokenRequest("use one way of client authentication: HTTP Basic or the form, not both")
    client_id, secret = _basic(value)
    if posted_id is not None and posted_id != client_id:
        raise InvalidTokenRequest("client_id in the form is not the one in the Basic credentials")
    return client_id, secret


def _basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("The Basic credentials are not base64 of client_id:client_secret.") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("The Basic credentials are not base64 of client_id:client_secret.")
    # §2.3.1: both parts are form-urlencoded before they are joined.
    return unquote_plus(client_id), unquote_plus(secret)


def metadata(request: web.Request) -> dict[str, Any]:
    """RFC 8414: where to get tokens and the keys that verify them, and how to authenticate."""
    settings = request.app[RUNTIME].settings
    origin = public_origin(request, settings.proxies)
    return {
        "issuer": settings.issuer,
        "token_endpoint": origin + TOKEN_PATH,
        "jwks_uri": origin + JWKS_PATH,
        "grant_types_supported": [GRANT],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "response_types_supported": [],
        "service_documentation": origin + "/openapi.json",
    }
