"""Per-request DataLoaders: every relation is one query per batch, never one per row."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from gql_service import models
from gql_service.queries import QuoteFilter, QuoteWithClose, Reader
from gql_service.records import (
    CompetitorRecord,
    ContractLineRecord,
    ContractRecord,
    OpportunityCloseRecord,
    OpportunityLineRecord,
    OpportunityRecord,
    QuoteCloseRecord,
    QuoteLineRecord,
    QuoteRecord,
)

K = TypeVar("K", bound=Hashable)
QuoteRow = QuoteWithClose
V = TypeVar("V")


def _aligned(
    fetch: Callable[[Sequence[K]], Awaitable[dict[K, V]]], default: Callable[[], Any]
) -> Callable[[list[K]], Awaitable[list[V]]]:
    """Turn a dict-returning batch query into a DataLoader function aligned with its keys."""

    async def load(keys: list[K]) -> list[V]:
        found = await fetch(keys)
        return [found.get(key, default()) for key in keys]

    return load


class Loaders:
    """One set of DataLoaders per request: every list is one query per batch, never per row."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self.opportunity: DataLoader[int, OpportunityRecord | None] = self._by_id(
            models.Opportunity
        )
        self.quote: DataLoader[int, QuoteRecord | None] = self._by_id(models.Quote)
        self.competitor: DataLoader[int, CompetitorRecord | None] = self._by_id(models.Competitor)
        self.opportunity_close: DataLoader[int, OpportunityCloseRecord | None] = self._by_id(
            models.OpportunityClose
        )
        self.quote_close_by_id: DataLoader[int, QuoteCloseRecord | None] = self._by_id(
            models.QuoteClose
        )
        self.close_history: DataLoader[int, list[OpportunityCloseRecord]] = DataLoader(
            _aligned(reader.closes_by_opportunity, list)
        )
        self.quote_close: DataLoader[int, QuoteCloseRecord | None] = DataLoader(
            _aligned(reader.quote_closes_by_quote, lambda: None)
        )
        self.open_quote_count: DataLoader[int, int] = DataLoader(
            _aligned(reader.open_quote_counts, int)
        )
        self._quotes: dict[QuoteFilter, DataLoader[int, list[QuoteRow]]] = {}
        # --- project contracts ---
        self.contract: DataLoader[int, ContractRecord | None] = self._by_id(models.ProjectContract)
        self.contract_line: DataLoader[int, ContractLineRecord | None] = self._by_id(
            models.ContractLine
        )
        self.contract_lines: DataLoader[int, list[ContractLineRecord]] = self._lines(
            models.ContractLine
        )
        self.contracts_of_opportunity: DataLoader[int, list[ContractRecord]] = DataLoader(
            _aligned(reader.contracts_by_opportunity, list)
        )
        self.contract_of_quote: DataLoader[int, ContractRecord | None] = DataLoader(
            _aligned(reader.contracts_by_quote, lambda: None)
        )
        self.quote_line: DataLoader[int, QuoteLineRecord | None] = self._by_id(models.QuoteLine)
        self.opportunity_line: DataLoader[int, OpportunityLineRecord | None] = self._by_id(
            models.OpportunityLine
        )
        self.quote_lines: DataLoader[int, list[QuoteLineRecord]] = self._lines(models.QuoteLine)
        self.opportunity_lines: DataLoader[int, list[OpportunityLineRecord]] = self._lines(
            models.OpportunityLine
        )

    def _lines(
        self, model: type[models.QuoteLine | models.OpportunityLine | models.ContractLine]
    ) -> Any:
        """Lines of many parents (quotes, opportunities or contracts), oldest first, one query
        a batch."""

        async def fetch(ids: Sequence[int]) -> dict[int, list[Any]]:
            return await self._reader.lines_by_parent(model, ids)

        return DataLoader(_aligned(fetch, list))

    def _by_id(self, model: type[models.Entity]) -> DataLoader[int, Any]:
        """Rows of one table by id; the attribute's annotation names their record protocol."""

        async def fetch(ids: Sequence[int]) -> dict[int, Any]:
            return await self._reader.by_ids(model, ids)

        return DataLoader(_aligned(fetch, lambda: None))

    def quotes(self, quote_filter: QuoteFilter) -> DataLoader[int, list[QuoteRow]]:
        """Quotes (with their close records) of many opportunities, batched per filter."""
        loader = self._quotes.get(quote_filter)
        if loader is None:

            async def fetch(ids: Sequence[int]) -> dict[int, list[QuoteRow]]:
                return await self._reader.quotes_by_opportunity(ids, quote_filter)

            loader = self._quotes[quote_filter] = DataLoader(_aligned(fetch, list))
        return loader
