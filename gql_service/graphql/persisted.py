"""Persisted queries over HTTP: Apollo's automatic persisted queries and trusted documents."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError
from sqlalchemy.exc import SQLAlchemyError

from gql_service.graphql.localized import LocalizedGraphQLError
from gql_service.messages import Message, msg
from gql_service.persisted_queries import (
    PersistedQueryStore,
    TrustedDocuments,
    document_hash,
    normalize_id,
)

log = logging.getLogger("gql_service.errors")

SHA256_HEX_LENGTH = 64


class PersistedQueryError(Exception):
    """A refusal with its GraphQL message and ``extensions.code``."""

    def __init__(self, message: Message, code: str, **extensions: Any) -> None:
        super().__init__(str(message))
        self.message = message
        self.code = code
        self.extensions = extensions

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def graphql_error(self) -> GraphQLError:
        return LocalizedGraphQLError(
            self.message, extensions={"code": self.code, **self.extensions}
        )


def _not_found() -> PersistedQueryError:
    # Apollo Client's persisted-query link retries with the full text on this message or code:
    # a protocol word, the same in every language.
    return PersistedQueryError(Message("PersistedQueryNotFound"), "PERSISTED_QUERY_NOT_FOUND")


@dataclass(frozen=True)
class Resolved:
    """The document to execute, and the hash to register it under once it validates."""

    query: str | None
    register: str | None = None


class PersistedQueries:
    """Turns a request's ``query``, ``extensions.persistedQuery`` and ``documentId`` into a query.

    Without trusted documents: a hash-only request runs a registered document or gets
    PERSISTED_QUERY_NOT_FOUND; a hash with the full text registers it (PERSISTED_QUERY_HASH_MISMATCH
    when they disagree); with APQ off the extension gets PERSISTED_QUERY_NOT_SUPPORTED.
    With trusted documents only listed documents run, by id or by text; any other document gets
    PERSISTED_QUERY_NOT_ALLOWED, and nothing is registered.
    """

    def __init__(
        self, store: PersistedQueryStore, *, apq_enabled: bool, trusted: TrustedDocuments | None
    ) -> None:
        self.store = store
        self.apq_enabled = apq_enabled
        self.trusted = trusted

    async def resolve(
        self, query: str | None, extensions: dict[str, Any] | None, document_id: str | None
    ) -> Resolved:
        persisted = (extensions or {}).get("persistedQuery")
        if self.trusted is not None:
            return self._resolve_trusted(self.trusted, query, persisted, document_id)
        if document_id is not None:
            if query is not None:
                return Resolved(self._check_hash(query, normalize_id(document_id)))
            return Resolved(await self._lookup(normalize_id(document_id)))
        if persisted is None:
            return Resolved(query)
        if not self.apq_enabled:
            raise PersistedQueryError(
                Message("PersistedQueryNotSupported"), "PERSISTED_QUERY_NOT_SUPPORTED"
            )
        sha256 = _apq_hash(persisted)
        if query is None:
            return Resolved(await self._lookup(sha256))
        return Resolved(self._check_hash(query, sha256), register=sha256)

    async def register(self, sha256: str, document: str) -> None:
        """Store a document that parsed and validated; a failure only costs a later retry."""
        try:
            await self.store.put(sha256, document)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("persisted query %s not stored: %s", sha256, type(exc).__name__)

    def _resolve_trusted(
        self,
        trusted: TrustedDocuments,
        query: str | None,
        persisted: object,
        document_id: str | None,
    ) -> Resolved:
        if document_id is None and persisted is not None:
            document_id = _apq_hash(persisted)
        if document_id is not None:
            document = trusted.document(document_id)
            if document is not None and (query is None or query == document):
                return Resolved(document)
            if query is None:
                raise _not_found()
        if query is not None and not trusted.allows(query):
            raise PersistedQueryError(
                msg("Only trusted documents may run on this server."), "PERSISTED_QUERY_NOT_ALLOWED"
            )
        return Resolved(query)

    async def _lookup(self, sha256: str) -> str:
        # A database outage propagates: OutageGuard answers it with SERVICE_UNAVAILABLE.
        document = await self.store.get(sha256)
        if document is None:
            raise _not_found()
        return document

    @staticmethod
    def _check_hash(query: str, sha256: str) -> str:
        if document_hash(query) != sha256:
            raise PersistedQueryError(
                msg("The persisted query hash does not match the query text."),
                "PERSISTED_QUERY_HASH_MISMATCH",
            )
        return query


def _apq_hash(persisted: object) -> str:
    """The ``sha256Hash`` of an ``extensions.persistedQuery`` of version 1, lowercased."""
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise PersistedQueryError(
            msg("Unsupported persisted query version; only version 1 is supported."), "BAD_REQUEST"
        )
    sha256 = persisted.get("sha256Hash")
    if not isinstance(sha256, str) or len(sha256) != SHA256_HEX_LENGTH:
        raise PersistedQueryError(
            msg("persistedQuery.sha256Hash must be a hex SHA-256 of the query."), "BAD_REQUEST"
        )
    return normalize_id(sha256)
