"""The queries the compiled path answered lately: candidates for the fast lane."""

from __future__ import annotations

from dataclasses import dataclass

from cachetools import LRUCache
from graphql import DocumentNode, OperationDefinitionNode


@dataclass(frozen=True)
class KnownRead:
    document: DocumentNode
    operation: OperationDefinitionNode


class KnownReads:
    """Queries answered by compilation lately, by text and operation name as sent."""

    def __init__(self, size: int = 256) -> None:
        self._known: LRUCache[tuple[str, str | None], KnownRead] = LRUCache(maxsize=size)

    def remember(
        self,
        query: str,
        operation_name: str | None,
        document: DocumentNode,
        operation: OperationDefinitionNode,
    ) -> None:
        self._known[(query, operation_name)] = KnownRead(document, operation)

    def get(self, query: str, operation_name: str | None) -> KnownRead | None:
        return self._known.get((query, operation_name))
