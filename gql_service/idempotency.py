"""Idempotency keys: the claim taken inside the effect's transaction, and the stored response.

A request that carries a key claims it by inserting its ``idempotency_key`` row as the first
statement of the transaction that does the work. The unique index on (principal, key) makes a
concurrent twin wait for that transaction (PostgreSQL) or for the write lock (SQLite's BEGIN
IMMEDIATE), and then fail to claim: it replays the stored response instead of running again.
A transaction that rolls back (a refused request, a fault) takes its claim with it.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from gql_service.database import WRITE_OPTION
from gql_service.messages import TranslatableError, msg
from gql_service.models import IdempotencyKey
from gql_service.persisted_queries import document_hash

KEY_MAX_LENGTH = 255
# Visible ASCII without the double quote: UUIDs, ULIDs and base64 fit; nothing needs escaping.
_KEY = re.compile(rf"[\x21\x23-\x7e]{{1,{KEY_MAX_LENGTH}}}")
PURGE_BATCH = 1_000


class InvalidIdempotencyKeyError(TranslatableError, ValueError):
    """An ``Idempotency-Key`` header that is empty, too long, repeated or not visible ASCII."""


class IdempotencyKeyTakenError(Exception):
    """Another request holds this key: this request's transaction rolled back untouched."""

    def __init__(self, key: str) -> None:
        super().__init__(f"idempotency key {key!r} is claimed by an earlier request")
        self.key = key


def parse_key(values: list[str]) -> str:
    """The key of an ``Idempotency-Key`` header, bare or as a quoted structured-field string."""
    if len(values) != 1:
        raise InvalidIdempotencyKeyError(msg("Send exactly one Idempotency-Key header."))
    raw = values[0].strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1]
    if not _KEY.fullmatch(raw):
        raise InvalidIdempotencyKeyError(
            msg(
                "An Idempotency-Key is 1-{maximum} visible ASCII characters "
                "(no spaces or double quotes), e.g. a UUID.",
                maximum=KEY_MAX_LENGTH,
            )
        )
    return raw


def request_hash(body: bytes) -> str:
    """SHA-256 of what the request asks for: document, operation name and variables.

    Parsed and re-encoded with sorted keys, so whitespace and key order do not matter; the
    document counts by its SHA-256, which equals an automatic persisted query's hash, so a
    retry may send the hash alone. A body that is not a JSON object counts byte for byte.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        query = data.get("query")
        extensions = data.get("extensions")
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        if isinstance(query, str):
            document: Any = document_hash(query)
        elif isinstance(persisted, dict) and isinstance(persisted.get("sha256Hash"), str):
            document = persisted["sha256Hash"]
        else:
            document = extensions
        canonical = {
            "document": document,
            "operationName": data.get("operationName"),
            "variables": data.get("variables"),
        }
        try:
            return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
        except orjson.JSONEncodeError:
            pass  # nested deeper than orjson encodes: fall back to the bytes
    return hashlib.sha256(body).hexdigest()


@dataclass(eq=False)
class Claim:
    """One request's key, and how far its claim got."""

    principal: str
    key: str
    request_hash: str
    ttl: timedelta
    committed: bool = False  # a transaction that inserted the claim has committed
    taken: bool = False  # another request holds the key

    def condition(self) -> sa.ColumnElement[bool]:
        return sa.and_(
            col(IdempotencyKey.principal) == self.principal, col(IdempotencyKey.key) == self.key
        )


async def take(connection: AsyncConnection, claim: Claim, now: datetime) -> None:
    """Insert the claim; an expired row for the same key gives way first.

    Raises ``IdempotencyKeyTakenError`` when a live row exists (committed by another request).
    """
    await connection.execute(
        sa.delete(IdempotencyKey).where(claim.condition(), col(IdempotencyKey.expires_at) <= now)
    )
    try:
        await connection.execute(
            sa.insert(IdempotencyKey).values(
                principal=claim.principal,
                key=claim.key,
                request_hash=claim.request_hash,
                created_at=now,
                expires_at=now + claim.ttl,
            )
        )
    except IntegrityError as exc:
        claim.taken = True
        raise IdempotencyKeyTakenError(claim.key) from exc


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request_hash: str
    status_code: int | None
    body: str | None


class IdempotencyStore:
    """Reads and completes claimed keys, and purges expired ones now and then."""

    def __init__(self, engine: AsyncEngine, *, purge_interval_seconds: float = 60.0) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._purge_interval = purge_interval_seconds
        self._next_purge = 0.0

    async def find(self, claim: Claim, now: datetime) -> StoredResponse | None:
        """The live row for the claim's principal and key, if any."""
        stmt = sa.select(
            col(IdempotencyKey.request_hash),
            col(IdempotencyKey.status_code),
            col(IdempotencyKey.response),
        ).where(claim.condition(), col(IdempotencyKey.expires_at) > now)
        async with self._engine.connect() as connection:
            row = (await connection.execute(stmt)).first()
        return None if row is None else StoredResponse(*row)

    async def save(self, claim: Claim, status_code: int, body: str) -> None:
        stmt = (
            sa.update(IdempotencyKey)
            .where(claim.condition(), col(IdempotencyKey.request_hash) == claim.request_hash)
            .values(status_code=status_code, response=body)
        )
        async with self._writer.begin() as connection:
            await connection.execute(stmt)

    async def purge_expired(self, now: datetime) -> int:
        """Delete up to ``PURGE_BATCH`` expired rows (the expires_at index finds them)."""
        expired = (
            sa.select(col(IdempotencyKey.id))
            .where(col(IdempotencyKey.expires_at) <= now)
            .limit(PURGE_BATCH)
            .scalar_subquery()
        )
        async with self._writer.begin() as connection:
            return await _delete_count(connection, col(IdempotencyKey.id).in_(expired))

    async def purge_now_and_then(self, now: datetime) -> None:
        """At most one purge per interval per process: cheap enough to call after every save."""
        if time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + self._purge_interval
        await self.purge_expired(now)


async def _delete_count(connection: AsyncConnection, condition: sa.ColumnElement[bool]) -> int:
    result = await connection.execute(sa.delete(IdempotencyKey).where(condition))
    return int(result.rowcount or 0)
