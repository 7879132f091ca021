"""Project contracts: winning a quote drafts one from the quote and copies its lines.

A contract is a commercial document of its own, derived from the won quote. Reopening the
opportunity cancels its close records only and leaves its quotes as they are, so the won
quote's contract stays DRAFT and linked to both.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from gql_service import line_repository, transitions
from gql_service.line_repository import CONTRACT_LINES, QUOTE_LINES
from gql_service.models import Quote
from gql_service.records import ContractLineRecord, ContractRecord, OpportunityRecord
from gql_service.repositories import Repository


@dataclass(frozen=True, slots=True)
class DraftedContract:
    """A contract as winning its quote wrote it, with its lines."""

    contract: ContractRecord
    lines: list[ContractLineRecord]


def new_contract_number() -> str:
    return f"CON-{secrets.token_hex(4).upper()}"


async def draft_contract(
    repo: Repository, opportunity: OpportunityRecord, quote: Quote
) -> DraftedContract:
    """Write the DRAFT contract of a quote being won, and one contract line per quote line.

    Two statements whatever the number of lines. The caller holds the opportunity's lock and
    has just won ``quote`` (``transitions.win_quote``).
    """
    values = transitions.draft_contract(opportunity, quote, contract_number=new_contract_number())
    contract = await repo.record_contract(values)
    assert contract.id is not None
    assert quote.id is not None
    lines = await line_repository.copy_lines(
        repo, QUOTE_LINES, CONTRACT_LINES, quote.id, contract.id
    )
    return DraftedContract(contract, lines)
