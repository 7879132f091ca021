"""Persisted documents: registered by hash (automatic persisted queries) or trusted from a file."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service.database import WRITE_OPTION
from gql_service.models import PersistedQuery

HASH_PREFIX = "sha256:"
_TABLE = PersistedQuery.__table__  # type: ignore[attr-defined]


def document_hash(document: str) -> str:
    """The hex SHA-256 of a document's UTF-8 text, as Apollo and GraphQL Codegen compute it."""
    return hashlib.sha256(document.encode("utf-8", "surrogatepass")).hexdigest()


def normalize_id(document_id: str) -> str:
    """A document id without its optional ``sha256:`` prefix; hex digests compare lowercase."""
    bare = document_id.removeprefix(HASH_PREFIX)
    return bare.lower() if _is_hex(bare) else bare


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)


class TrustedDocumentsError(ValueError):
    """The trusted documents file cannot be used; ``str()`` names the file and the reason."""


@dataclass(frozen=True)
class TrustedDocuments:
    """An allow-list of documents, by the id the client build gave them and by their SHA-256.

    Relay's ``persisted_queries.json`` and GraphQL Codegen's ``persisted-documents.json`` are
    both one JSON object of ``id -> document``; Relay's ids may be MD5 hashes, so the SHA-256
    of every document is computed here too and full texts are checked against those.
    """

    by_id: dict[str, str]
    hashes: frozenset[str]

    @classmethod
    def load(cls, path: str | Path) -> TrustedDocuments:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TrustedDocumentsError(f"trusted documents {path}: {exc}") from exc
        if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
        ):
            raise TrustedDocumentsError(
                f"trusted documents {path}: expected a JSON object of id -> document text"
            )
        by_id: dict[str, str] = {}
        for key, document in raw.items():
            by_id[normalize_id(key)] = document
            by_id[document_hash(document)] = document
        return cls(by_id=by_id, hashes=frozenset(document_hash(d) for d in raw.values()))

    def document(self, document_id: str) -> str | None:
        return self.by_id.get(normalize_id(document_id))

    def allows(self, document: str) -> bool:
        return document_hash(document) in self.hashes


class PersistedQueryStore:
    """Registered documents by SHA-256: in the database, with an in-process LRU cache in front.

    The database makes a registration visible to every worker and instance; a document never
    changes once stored under its hash, so cached entries need no invalidation.
    """

    def __init__(self, engine: AsyncEngine, *, cache_size: int) -> None:
        self.engine = engine
        self.cache_size = max(cache_size, 0)
        self._cache: OrderedDict[str, str] = OrderedDict()

    async def get(self, sha256: str) -> str | None:
        document = self._cache.get(sha256)
        if document is not None:
            self._cache.move_to_end(sha256)
            return document
        async with self.engine.connect() as connection:
            document = (
                await connection.execute(
                    sa.select(_TABLE.c.document).where(_TABLE.c.sha256 == sha256)
                )
            ).scalar_one_or_none()
        if document is not None:
            self._remember(sha256, document)
        return document

    async def put(self, sha256: str, document: str) -> None:
        """Store a document under its hash; a hash already stored is left as it is."""
        if sha256 in self._cache:
            return
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        statement = (
            insert(_TABLE)
            .values(sha256=sha256, document=document, created_at=datetime.now(UTC))
            .on_conflict_do_nothing(index_elements=["sha256"])
        )
        async with self.engine.execution_options(**{WRITE_OPTION: True}).begin() as connection:
            await connection.execute(statement)
        self._remember(sha256, document)

    def _remember(self, sha256: str, document: str) -> None:
        if not self.cache_size:
            return
        self._cache[sha256] = document
        self._cache.move_to_end(sha256)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
