"""Closing quotes: shared by closeQuote, closeQuotes, winQuote and closeOpportunity."""

from __future__ import annotations

from dataclasses import dataclass

from gql_service.errors import Violation
from gql_service.models import DESCRIPTION_MAX, QuoteStatusReason
from gql_service.records import QuoteCloseRecord, QuoteRecord
from gql_service.repositories import Repository
from gql_service.rules import QUOTE_CLOSE_REASONS, check_choice, check_text
from gql_service.transitions import QuoteClosing


@dataclass(frozen=True, slots=True)
class ClosedQuote:
    """A quote as its close left it, with the close record that the close wrote."""

    quote: QuoteRecord
    record: QuoteCloseRecord


def check_quote_close_input(
    status_reason: QuoteStatusReason, description: str | None
) -> list[Violation]:
    return [
        *check_choice("status_reason", status_reason, QUOTE_CLOSE_REASONS),
        *check_text("description", description, max_length=DESCRIPTION_MAX),
    ]


async def close_open_quotes(repo: Repository, closing: QuoteClosing) -> list[ClosedQuote]:
    """Close the quotes that ``closing`` names under one batch id.

    Set-based: one statement on PostgreSQL, two on SQLite, whatever the number of quotes. The
    caller holds the opportunity's lock.
    """
    closed = await repo.close_open_quotes(closing)
    return [ClosedQuote(quote, record) for quote, record in closed]


def split_winner(
    closed: list[ClosedQuote], winner_id: int
) -> tuple[ClosedQuote, list[ClosedQuote]]:
    """The won quote and the others, as ``close_open_quotes(winner_id=...)`` returned them."""
    won = next(c for c in closed if c.quote.id == winner_id)
    return won, [c for c in closed if c is not won]
