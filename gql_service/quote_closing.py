"""Closing quotes: shared by closeQuote, closeQuotes, winQuote and closeOpportunity."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

from gql_service.errors import Violation
from gql_service.models import Quote, QuoteClose, QuoteState, QuoteStatusReason
from gql_service.repositories import Repository
from gql_service.rules import DESCRIPTION_MAX, QUOTE_CLOSE_REASONS, check_choice, check_text


def check_quote_close_input(
    status_reason: QuoteStatusReason, description: str | None
) -> list[Violation]:
    return [
        *check_choice("status_reason", status_reason, QUOTE_CLOSE_REASONS, what="Status reason"),
        *check_text("description", description, max_length=DESCRIPTION_MAX),
    ]


def close_quotes_in(
    repo: Repository,
    quotes: Sequence[Quote],
    *,
    status_reason: QuoteStatusReason,
    close_date: date | None,
    description: str | None,
    batch_id: str | None = None,
) -> list[QuoteClose]:
    """Close the given open quotes under one batch id and return their close records.

    The caller holds the opportunity's lock and adds quotes and records to the transaction.
    """
    batch = batch_id or str(uuid.uuid4())
    when = close_date or repo.today
    state = QuoteState.WON if status_reason is QuoteStatusReason.WON else QuoteState.CLOSED
    records = []
    for quote in quotes:
        assert quote.id is not None
        quote.state = state
        quote.status_reason = status_reason
        quote.closed_on = when
        repo.touch(quote)
        records.append(
            QuoteClose(
                quote_id=quote.id,
                quote_number=quote.quote_number,
                revision_number=quote.revision_number,
                status_reason=status_reason,
                close_date=when,
                description=description,
                batch_id=batch,
                created_at=repo.now,
                created_by=repo.actor,
            )
        )
    return records
