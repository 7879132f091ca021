"""Partner API keys: issued once, stored as a hash, verified per request, revoked at will.

A key reads ``gqs_<16 hex: key id>_<43 random characters>``: 256 bits of randomness behind a
recognisable prefix (as GitHub's ``ghp_``), so secret scanners can spot a leaked one. Because
the secret is high-entropy and random, a fast hash is right: nobody can guess their way
through 2^256 candidates, so a slow password hash (bcrypt, argon2) would only slow every
request. The table keeps SHA-256 of the whole key, compared in constant time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from gql_service.messages import msg
from gql_service.models import NAME_MAX, ApiKey
from gql_service.principal import (
    API_KEY_PREFIX,
    SCOPES,
    AuthenticationError,
    AuthMethod,
    Principal,
    valid_name,
)
from gql_service.repositories import Repository
from gql_service.unit_of_work import UnitOfWork

TOKEN_PATTERN = re.compile(rf"({API_KEY_PREFIX}[0-9a-f]{{16}})_[A-Za-z0-9_-]{{43}}")
# Verified keys kept in memory per worker; beyond this many the cache starts over.
CACHE_MAX_ENTRIES = 10_000
# The tokens accepted lately are remembered by a MAC under a key made in each process: the
# cache holds no secret, and a look-up tells nothing about the tokens it holds.
_MAC_KEY = secrets.token_bytes(32)


class ApiKeyError(Exception):
    """A key that cannot be created or revoked as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class IssuedApiKey:
    """A new key: ``token`` is the only copy of the secret and is never stored."""

    record: ApiKey
    token: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _mac(token: str) -> bytes:
    """The token's key in the cache of accepted tokens: keyed BLAKE2b, CPython's own (under
    load, OpenSSL's SHA-256 cost an R1 request ~7 µs, its set-up more than its hashing)."""
    return hashlib.blake2b(token.encode(), key=_MAC_KEY, digest_size=16).digest()


def new_token() -> tuple[str, str]:
    """A fresh (key id, token) pair."""
    key_id = API_KEY_PREFIX + secrets.token_hex(8)
    return key_id, f"{key_id}_{secrets.token_urlsafe(32)}"


def _scopes_text(scopes: Iterable[str]) -> str:
    chosen = set(scopes)
    unknown = chosen - set(SCOPES)
    if unknown:
        raise ApiKeyError(f"unknown scope(s): {', '.join(sorted(unknown))}")
    if not chosen:
        raise ApiKeyError("a key needs at least one scope")
    return " ".join(s for s in SCOPES if s in chosen)


async def create_api_key(uow: UnitOfWork, *, name: str, scopes: Sequence[str]) -> IssuedApiKey:
    """Issue a key named ``name`` (unique, recorded as createdBy of what it writes)."""
    if not valid_name(name):
        raise ApiKeyError(
            f"a key name has 1 to {NAME_MAX} printable characters, without surrounding spaces"
        )
    scopes_text = _scopes_text(scopes)
    key_id, token = new_token()

    async def work(repo: Repository) -> ApiKey:
        record = ApiKey(
            name=name,
            key_id=key_id,
            secret_hash=hash_token(token),
            scopes=scopes_text,
            created_at=repo.now,
            created_by=repo.actor,
        )
        await repo.add(record)
        return record

    try:
        record = await uow.run(work)
    except IntegrityError as exc:
        raise ApiKeyError(f"an API key named {name!r} already exists") from exc
    return IssuedApiKey(record, token)


async def list_api_keys(uow: UnitOfWork) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first; the records hold no secret."""

    async def work(repo: Repository) -> list[ApiKey]:
        stmt = sa.select(ApiKey).order_by(col(ApiKey.id))
        return list((await repo.session.scalars(stmt)).all())

    return await uow.run(work)


async def revoke_api_key(uow: UnitOfWork, *, key: str) -> ApiKey:
    """Revoke the key with this name or key id; revoking a revoked key changes nothing."""

    async def work(repo: Repository) -> ApiKey:
        stmt = sa.select(ApiKey).where(sa.or_(col(ApiKey.name) == key, col(ApiKey.key_id) == key))
        record = (await repo.session.scalars(stmt)).first()
        if record is None:
            raise ApiKeyError(f"no API key has the name or key id {key!r}")
        if record.revoked_at is None:
            record.revoked_at = repo.now
            record.revoked_by = repo.actor
            await repo.session.flush()
        return record

    return await uow.run(work)


@dataclass(frozen=True, slots=True)
class _Cached:
    expires: float
    secret_hash: str
    principal: Principal


class ApiKeyVerifier:
    """Checks API keys against the table, one primary-key look-up per key and cache period.

    A verified key is remembered for ``cache_seconds`` (0: never), so a revocation takes effect
    on every worker within that bound. Unknown, wrong and revoked keys are never cached.
    Requests that need the same key id looked up while a look-up is under way wait for that
    one: when a busy key's entry expired, every request in flight looked it up at once, each
    on a pooled connection (opening new ones if the pool had none idle).
    """

    def __init__(self, engine: AsyncEngine, *, cache_seconds: float) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._cache: dict[str, _Cached] = {}  # by key id
        self._accepted: dict[bytes, _Cached] = {}  # by the MAC of a token accepted
        self._loading: dict[str, asyncio.Task[tuple[str, Principal] | None]] = {}  # by key id

    async def verify(self, token: str) -> Principal:
        # A token accepted within the cache period: found by its MAC, without the pattern,
        # the SHA-256 and the comparison (its key's entry, and so its expiry, is the same).
        mac = _mac(token) if self.cache_seconds > 0 else None
        accepted = None if mac is None else self._accepted.get(mac)
        if accepted is not None and accepted.expires > time.monotonic():
            return accepted.principal
        match = TOKEN_PATTERN.fullmatch(token)
        if match is None:
            raise AuthenticationError(msg("Malformed API key."))
        key_id = match.group(1)
        presented = hash_token(token)
        cached = self._cache.get(key_id)
        if cached is not None and cached.expires > time.monotonic():
            return self._check(presented, cached.secret_hash, cached.principal)
        row = await self._shared_load(key_id)
        if row is None:
            raise AuthenticationError(msg("Unknown or revoked API key."))
        secret_hash, principal = row
        principal = self._check(presented, secret_hash, principal)
        if mac is not None:
            if len(self._cache) >= CACHE_MAX_ENTRIES or len(self._accepted) >= CACHE_MAX_ENTRIES:
                self._cache.clear()
                self._accepted.clear()
            expires = time.monotonic() + self.cache_seconds
            self._cache[key_id] = self._accepted[mac] = _Cached(expires, secret_hash, principal)
        return principal

    @staticmethod
    def _check(presented: str, stored: str, principal: Principal) -> Principal:
        if not hmac.compare_digest(presented, stored):
            raise AuthenticationError(msg("Unknown or revoked API key."))
        return principal

    async def _shared_load(self, key_id: str) -> tuple[str, Principal] | None:
        """The key's row, by the look-up under way for it if there is one."""
        loading = self._loading.get(key_id)
        if loading is None:
            loading = self._loading[key_id] = asyncio.ensure_future(self._load(key_id))
            loading.add_done_callback(partial(self._loaded, key_id))
        # (A waiter that is cancelled leaves the look-up to the others.)
        return await asyncio.shield(loading)

    def _loaded(self, key_id: str, loading: asyncio.Task[tuple[str, Principal] | None]) -> None:
        if self._loading.get(key_id) is loading:
            del self._loading[key_id]
        if not loading.cancelled():
            loading.exception()  # (retrieved: every waiter may have left)

    async def _load(self, key_id: str) -> tuple[str, Principal] | None:
        stmt = sa.select(col(ApiKey.secret_hash), col(ApiKey.name), col(ApiKey.scopes)).where(
            col(ApiKey.key_id) == key_id, col(ApiKey.revoked_at).is_(None)
        )
        async with AsyncSession(self.engine) as session:
            row = (await session.execute(stmt)).first()
        if row is None:
            return None
        secret_hash, name, scopes = row
        return secret_hash, Principal(name, frozenset(scopes.split()), AuthMethod.API_KEY)


def describe(record: ApiKey) -> str:
    """One line for ``list-api-keys``: everything but the secret, which is not stored."""
    revoked = (
        f"revoked {_stamp(record.revoked_at)} by {record.revoked_by}"
        if record.revoked_at
        else "active"
    )
    return (
        f"{record.key_id}  {record.name}  [{record.scopes}]  "
        f"created {_stamp(record.created_at)} by {record.created_by}  {revoked}"
    )


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
