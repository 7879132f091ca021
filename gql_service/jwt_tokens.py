"""JWTs from a partner's identity provider: keys from settings, claims checked with PyJWT.

One key source is configured: an HS256 secret, a PEM public key (RS256 or ES256 by its type)
or a JWKS document from a file or a URL. The JWKS is loaded when first needed, kept for
``JWKS_CACHE_SECONDS`` and loaded again on a token with an unknown ``kid``, at most once per
``JWKS_REFRESH_MIN_SECONDS``; fetches are async, one at a time, and a failed fetch keeps the
keys already known.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gql_service.messages import msg
from gql_service.principal import (
    AuthenticationError,
    AuthMethod,
    Principal,
    SigningKeysUnavailableError,
    valid_name,
)
from gql_service.settings import Settings

log = logging.getLogger(__name__)

# Public-key algorithms a JWKS or PEM key may use; HS256 only ever with the configured secret,
# so a public key can never be mistaken for an HMAC secret.
PUBLIC_KEY_ALGORITHMS = frozenset({"RS256", "ES256"})
HMAC_SECRET_MIN_BYTES = 32
JWKS_MAX_BYTES = 1_000_000


class AuthConfigurationError(ValueError):
    """The authentication settings cannot work; the message names the setting."""


class KeySource(Protocol):
    async def key_for(self, kid: str | None, algorithm: str) -> Any:
        """The verification key for a token's header; raises AuthenticationError if none."""
        ...


class StaticKey:
    """One key and the one algorithm it is for."""

    def __init__(self, key: Any, algorithm: str) -> None:
        self.key = key
        self.algorithm = algorithm

    async def key_for(self, kid: str | None, algorithm: str) -> Any:
        if algorithm != self.algorithm:
            raise AuthenticationError(
                msg("Tokens must be signed with {algorithm}.", algorithm=self.algorithm)
            )
        return self.key


def parse_jwks(document: bytes) -> dict[str | None, jwt.PyJWK]:
    """The signing keys of a JWKS document, by ``kid``; encryption and HMAC keys are skipped."""
    data = json.loads(document)
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("not a JWKS document (no 'keys' list)")
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in data["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWTError, KeyError, ValueError, TypeError):
            continue
        if key.algorithm_name in PUBLIC_KEY_ALGORITHMS:
            keys[key.key_id] = key
    if not keys:
        raise ValueError("the JWKS document holds no RS256 or ES256 signing key")
    return keys


class JwksKeys:
    """A JWKS document, loaded by ``load`` (a file read or an HTTP fetch) and kept fresh."""

    def __init__(
        self,
        load: Callable[[], Awaitable[bytes]],
        *,
        source: str,
        max_age: float,
        min_interval: float,
    ) -> None:
        self._load = load
        self.source = source
        self.max_age = max_age
        self.min_interval = min_interval
        self._keys: dict[str | None, jwt.PyJWK] | None = None
        self._loaded_at = -math.inf
        self._attempted_at = -math.inf
        self._lock = asyncio.Lock()

    def prime(self, document: bytes) -> None:
        self._keys = parse_jwks(document)
        self._loaded_at = self._attempted_at = time.monotonic()

    async def key_for(self, kid: str | None, algorithm: str) -> Any:
        if time.monotonic() - self._loaded_at > self.max_age:
            await self._refresh()
        key = self._find(kid)
        if key is None:
            await self._refresh()
            key = self._find(kid)
        if key is None:
            if self._keys is None:
                raise SigningKeysUnavailableError(self.source)
            raise AuthenticationError(msg("Token signed with an unknown key."))
        if key.algorithm_name != algorithm:
            raise AuthenticationError(msg("Token algorithm does not match its key."))
        return key

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if self._keys is None:
            return None
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        async with self._lock:
            # Rate limit: tokens with made-up kids must not turn into a flood of fetches.
            if time.monotonic() - self._attempted_at < self.min_interval:
                return
            self._attempted_at = time.monotonic()
            try:
                keys = parse_jwks(await self._load())
            except Exception as exc:
                log.warning("could not load the JWKS from %s: %s", self.source, exc)
                return
            self._keys = keys
            self._loaded_at = time.monotonic()
            log.info("loaded %d signing key(s) from %s", len(keys), self.source)


def _url_loader(url: str, timeout: float) -> Callable[[], Awaitable[bytes]]:
    async def load() -> bytes:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            response = await client.get(url, headers={"accept": "application/json"})
        response.raise_for_status()
        if len(response.content) > JWKS_MAX_BYTES:
            raise ValueError(f"JWKS document over {JWKS_MAX_BYTES} bytes")
        return response.content

    return load


def _file_loader(path: Path) -> Callable[[], Awaitable[bytes]]:
    async def load() -> bytes:
        return await asyncio.to_thread(path.read_bytes)

    return load


def _read(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise AuthConfigurationError(f"{setting}: cannot read {path}: {exc.strerror}") from exc


def _public_key(path: str) -> StaticKey:
    data = _read(path, "JWT_PUBLIC_KEY_FILE")
    try:
        key = load_pem_public_key(data)
    except ValueError as exc:
        message = f"JWT_PUBLIC_KEY_FILE: {path} is not a PEM public key"
        raise AuthConfigurationError(message) from exc
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return StaticKey(key, "RS256")
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return StaticKey(key, "ES256")
    raise AuthConfigurationError(
        "JWT_PUBLIC_KEY_FILE: expected an RSA key of 2048+ bits (RS256) or a P-256 key (ES256)"
    )


def _key_source(settings: Settings) -> KeySource | None:
    configured = [
        name
        for name, value in (
            ("JWT_SECRET", settings.jwt_secret),
            ("JWT_PUBLIC_KEY_FILE", settings.jwt_public_key_file),
            ("JWT_JWKS_FILE", settings.jwt_jwks_file),
            ("JWT_JWKS_URL", settings.jwt_jwks_url),
        )
        if value
    ]
    if len(configured) > 1:
        raise AuthConfigurationError(f"set only one JWT key source, not {' and '.join(configured)}")
    if settings.jwt_secret:
        if len(settings.jwt_secret.encode()) < HMAC_SECRET_MIN_BYTES:
            raise AuthConfigurationError(
                f"JWT_SECRET must be at least {HMAC_SECRET_MIN_BYTES} bytes for HS256"
            )
        return StaticKey(settings.jwt_secret, "HS256")
    if settings.jwt_public_key_file:
        return _public_key(settings.jwt_public_key_file)
    refresh = {
        "max_age": settings.jwks_cache_seconds,
        "min_interval": settings.jwks_refresh_min_seconds,
    }
    if settings.jwt_jwks_file:
        path = settings.jwt_jwks_file
        keys = JwksKeys(_file_loader(Path(path)), source=path, **refresh)
        document = _read(path, "JWT_JWKS_FILE")
        try:
            keys.prime(document)
        except ValueError as exc:
            raise AuthConfigurationError(f"JWT_JWKS_FILE: {path}: {exc}") from exc
        return keys
    if settings.jwt_jwks_url:
        url = settings.jwt_jwks_url
        if not url.startswith(("https://", "http://")):
            raise AuthConfigurationError("JWT_JWKS_URL must be an http(s) URL")
        timeout = settings.jwks_fetch_timeout_ms / 1000
        return JwksKeys(_url_loader(url, timeout), source=url, **refresh)
    return None


def jwt_verifier(settings: Settings) -> JwtVerifier | None:
    """The verifier the settings describe, or None when no JWT key is configured."""
    keys = _key_source(settings)
    if keys is None:
        return None
    if not settings.jwt_issuer or not settings.jwt_audience:
        raise AuthConfigurationError("JWT_ISSUER and JWT_AUDIENCE are required with a JWT key")
    return JwtVerifier(
        keys,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway=settings.jwt_leeway_seconds,
        name_claim=settings.jwt_name_claim,
    )


class JwtVerifier:
    """Signature, ``iss``, ``aud``, ``exp`` and ``nbf`` (with leeway); scopes and name."""

    def __init__(
        self, keys: KeySource, *, issuer: str, audience: str, leeway: float, name_claim: str
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.name_claim = name_claim

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise AuthenticationError(msg("Malformed token.")) from exc
        algorithm, kid = header.get("alg"), header.get("kid")
        if not isinstance(algorithm, str) or not (kid is None or isinstance(kid, str)):
            raise AuthenticationError(msg("Malformed token header."))
        key = await self.keys.key_for(kid, algorithm)
        claims = self._decode(token, key, algorithm)
        name = claims.get(self.name_claim)
        if not valid_name(name):
            raise AuthenticationError(
                msg("Token has no usable {claim} claim.", claim=repr(self.name_claim))
            )
        return Principal(name, _scopes(claims), AuthMethod.JWT)

    def _decode(self, token: str, key: Any, algorithm: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"], "enforce_minimum_key_length": True},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError(msg("Token has expired.")) from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthenticationError(msg("Token is not valid yet.")) from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthenticationError(msg("Token is for another audience.")) from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthenticationError(msg("Token is from another issuer.")) from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthenticationError(msg("Token signature does not verify.")) from exc
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise AuthenticationError(msg("Invalid token.")) from exc
        return claims


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    """OAuth's space-separated ``scope``, or ``scp`` as a list (Azure AD, Okta) or string."""
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list):
        return frozenset(s for s in raw if isinstance(s, str))
    return frozenset()
