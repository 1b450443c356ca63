"""Access tokens: Ed25519 signing keys in the state folder, JWT issuance and verification.

Each replica signs with the newest key in its own state folder and publishes the public half
in the store, so every replica verifies every replica's tokens (and a rotated key keeps
verifying until the tokens it signed have expired).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.errors import Unauthorized

TOKEN_TYPE = "at+jwt"  # R-AU-03: explicit typing rejects ID tokens and other JWTs

# Why a token was refused, where saying so helps its holder and no forger (issue 12.9).
MALFORMED = "The token is malformed: an access token is a JWT of three base64url parts."
UNKNOWN_KEY = "The token is signed with a key this gateway does not know (a retired one?); get a new token."
EXPIRED = "The token has expired; get a new one from /oauth/token."
NOT_YET = "The token is not valid yet; check the clock of the machine that asked for it."
NOT_VALID = "The token is not valid."
MAX_LIFETIME = 3600
_VERIFIED_CACHE = 10_000


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(private: Ed25519PrivateKey) -> dict[str, str]:
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}
    # RFC 7638 thumbprint: the kid is derived from the key, so it cannot collide by accident.
    thumb = hashlib.sha256(json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode()).digest()
    return {**jwk, "kid": _b64(thumb)[:22], "alg": "EdDSA", "use": "sig"}


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Ed25519PrivateKey
    jwk: dict[str, str]


class Keyring:
    """Private keys kept as PEM files (mode 0600) in STATE_DIR/keys; the newest signs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def signing_keys(self) -> list[SigningKey]:
        if not self.folder.is_dir():
            return []
        found = []
        # Names start with a millisecond timestamp; mtimes do not survive Secrets or plain copies.
        for path in sorted(self.folder.glob("*.pem"), key=lambda p: p.name):
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if isinstance(private, Ed25519PrivateKey):
                jwk = public_jwk(private)
                found.append(SigningKey(jwk["kid"], private, jwk))
        return found

    def newest_name(self) -> str:
        names = sorted(p.name for p in self.folder.glob("*.pem")) if self.folder.is_dir() else []
        return names[-1] if names else ""

    def current(self) -> SigningKey:
        keys = self.signing_keys()
        return keys[-1] if keys else self.add()

    def add(self) -> SigningKey:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = Ed25519PrivateKey.generate()
        jwk = public_jwk(private)
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        path = self.folder / f"{int(time.time() * 1000):015d}-{jwk['kid']}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return SigningKey(jwk["kid"], private, jwk)


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a verified token."""

    client_id: str
    org_id: str
    roles: frozenset[str]
    token_id: str

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


class TokenIssuer:
    def __init__(self, key: SigningKey, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        self.key, self.issuer, self.audience, self.ttl = key, issuer, audience, ttl_seconds

    def with_key(self, key: SigningKey) -> TokenIssuer:
        return TokenIssuer(key, issuer=self.issuer, audience=self.audience, ttl_seconds=self.ttl)

    def issue(self, client_id: str, org_id: str, roles: tuple[str, ...]) -> tuple[str, int]:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": client_id, "aud": self.audience, "iat": now,
                  "nbf": now, "exp": now + self.ttl, "jti": uuid.uuid4().hex, "org": org_id,
                  "roles": list(roles)}
        token = jwt.encode(claims, self.key.private, algorithm="EdDSA",
                           headers={"kid": self.key.kid, "typ": TOKEN_TYPE})
        return token, self.ttl


class TokenVerifier:
    """Fixed algorithms, exact `iss`/`aud`, required claims, bounded lifetime (R-AU-01..04)."""

    def __init__(self, *, issuer: str, audience: str, algorithms: tuple[str, ...], leeway: int,
                 refresh_keys: Callable[[], Mapping[str, Mapping[str, str]]]) -> None:
        self.issuer, self.audience, self.algorithms, self.leeway = issuer, audience, algorithms, leeway
        self._refresh = refresh_keys
        self._keys: dict[str, jwt.PyJWK] = {}
        self._jwks: dict[str, dict[str, str]] = {}
        self._last_refresh = 0.0
        # Tokens already verified, until they expire: a signature check per call is the
        # costliest step of a cached answer. Cleared whenever the set of keys changes.
        self._verified: dict[str, tuple[Principal, float]] = {}

    def load_keys(self, jwks: Mapping[str, Mapping[str, str]]) -> None:
        fresh = {kid: dict(jwk) for kid, jwk in jwks.items()}
        self._last_refresh = time.monotonic()
        if fresh == self._jwks:
            return
        self._jwks = fresh
        self._keys = {kid: jwt.PyJWK(jwk) for kid, jwk in fresh.items()}
        self._verified.clear()

    def _key(self, kid: str) -> jwt.PyJWK | None:
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._last_refresh > 1.0:
            # An unknown kid triggers at most one refresh a second (a new replica's key).
            self.load_keys(self._refresh())
            key = self._keys.get(kid)
        return key

    def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None and time.time() < known[1]:
            return known[0]
        who, expires = self._verify(token)
        if len(self._verified) >= _VERIFIED_CACHE:
            self._verified.clear()
        self._verified[token] = (who, expires)
        return who

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized(MALFORMED) from None
        kid = header.get("kid")
        if (header.get("typ") != TOKEN_TYPE or header.get("alg") not in self.algorithms
                or "crit" in header or not isinstance(kid, str)):
            raise Unauthorized(NOT_VALID)
        key = self._key(kid)
        if key is None:  # the JWKS is public: naming an unknown kid tells a forger nothing new
            raise Unauthorized(UNKNOWN_KEY)
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key=key, algorithms=list(self.algorithms), audience=self.audience,
                issuer=self.issuer, leeway=self.leeway,
                options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]})
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError) as exc:
            # PyJWT checks the signature before any claim, so a token named expired is ours.
            raise Unauthorized(EXPIRED if isinstance(exc, jwt.ExpiredSignatureError) else NOT_YET) from None
        except jwt.InvalidSignatureError:
            raise Unauthorized(NOT_VALID) from None
        except jwt.DecodeError:
            raise Unauthorized(MALFORMED) from None
        except jwt.PyJWTError:
            raise Unauthorized(NOT_VALID) from None
        # Trusted until exp, less the leeway the check above granted.
        return _principal(claims), float(claims["exp"]) - self.leeway


def _principal(claims: Mapping[str, Any]) -> Principal:
    roles, org, lifetime = claims.get("roles"), claims.get("org"), claims["exp"] - claims["iat"]
    if (not isinstance(roles, list) or not all(isinstance(r, str) for r in roles)
            or not isinstance(org, str) or not isinstance(claims["sub"], str) or lifetime > MAX_LIFETIME):
        raise Unauthorized(NOT_VALID)
    return Principal(claims["sub"], org, frozenset(roles), str(claims["jti"]))
