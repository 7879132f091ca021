"""GraphQL operations shared by the API tests, and helpers that reach states as users do."""

from __future__ import annotations

from typing import Any, Protocol

OPEN_QUOTES = "... on OpportunityHasOpenQuotesError { openQuotes { id quoteNumber state } }"
ALLOWED = "... on InvalidStatusReasonError { allowed }"
CONFLICT = "... on ConcurrencyConflictError { expectedVersion actualVersion }"
CURRENCY = "... on CurrencyMismatchError { expectedCurrency actualCurrency }"


def errors(*fragments: str) -> str:
    """The errors selection: the UserError fields plus the typed data the union can carry."""
    extra = " ".join(fragments)
    return f"errors {{ __typename ... on UserError {{ code message field }} {extra} }}"


OPPORTUNITY_FIELDS = """
id name customerName currencyCode estimatedRevenue estimatedCloseDate state statusReason
forecastCategory actualRevenue actualCloseDate description isClosed openQuoteCount version
createdBy modifiedBy
"""

QUOTE_FIELDS = """
id quoteNumber revisionNumber name currencyCode totalAmount state statusReason isOpen
effectiveFrom effectiveTo closedOn version
closeRecord { quoteNumber revisionNumber statusReason closeDate description batchId }
"""

CLOSE_FIELDS = """
id outcome statusReason actualRevenue closeDate description state createdBy
canceledAt canceledBy competitor { id name }
"""

CREATE_OPPORTUNITY = f"""
mutation($input: CreateOpportunityInput!) {{
  createOpportunity(input: $input) {{ opportunity {{ {OPPORTUNITY_FIELDS} }} {errors()} }}
}}"""

UPDATE_OPPORTUNITY = f"""
mutation($input: UpdateOpportunityInput!) {{
  updateOpportunity(input: $input) {{
    opportunity {{ {OPPORTUNITY_FIELDS} }}
    {errors(ALLOWED, CONFLICT)}
  }}
}}"""

CLOSE_OPPORTUNITY = f"""
mutation($input: CloseOpportunityInput!) {{
  closeOpportunity(input: $input) {{
    opportunity {{ {OPPORTUNITY_FIELDS} }}
    opportunityClose {{ {CLOSE_FIELDS} }}
    closedQuotes {{ {QUOTE_FIELDS} }}
    {errors(OPEN_QUOTES, ALLOWED, CONFLICT)}
  }}
}}"""

REOPEN_OPPORTUNITY = f"""
mutation($input: ReopenOpportunityInput!) {{
  reopenOpportunity(input: $input) {{
    opportunity {{ {OPPORTUNITY_FIELDS} closeHistory {{ {CLOSE_FIELDS} }} }}
    canceledCloses {{ {CLOSE_FIELDS} }}
    {errors(ALLOWED, CONFLICT)}
  }}
}}"""

CLOSE_QUOTES = f"""
mutation($input: CloseQuotesInput!) {{
  closeQuotes(input: $input) {{
    opportunity {{ {OPPORTUNITY_FIELDS} }}
    closedQuotes {{ {QUOTE_FIELDS} }}
    {errors(ALLOWED, CONFLICT)}
  }}
}}"""

CREATE_QUOTE = f"""
mutation($input: CreateQuoteInput!) {{
  createQuote(input: $input) {{ quote {{ {QUOTE_FIELDS} }} {errors(CURRENCY)} }}
}}"""

UPDATE_QUOTE = f"""
mutation($input: UpdateQuoteInput!) {{
  updateQuote(input: $input) {{ quote {{ {QUOTE_FIELDS} }} {errors(CONFLICT)} }}
}}"""

ACTIVATE_QUOTE = f"""
mutation($input: ActivateQuoteInput!) {{
  activateQuote(input: $input) {{ quote {{ {QUOTE_FIELDS} }} {errors(CONFLICT)} }}
}}"""

REVISE_QUOTE = f"""
mutation($input: ReviseQuoteInput!) {{
  reviseQuote(input: $input) {{
    quote {{ {QUOTE_FIELDS} }}
    revisedQuote {{ {QUOTE_FIELDS} }}
    {errors(CONFLICT)}
  }}
}}"""

WIN_QUOTE = f"""
mutation($input: WinQuoteInput!) {{
  winQuote(input: $input) {{
    quote {{ {QUOTE_FIELDS} opportunity {{ state }} }}
    lostQuotes {{ {QUOTE_FIELDS} }}
    {errors(CONFLICT)}
  }}
}}"""

CLOSE_QUOTE = f"""
mutation($input: CloseQuoteInput!) {{
  closeQuote(input: $input) {{ quote {{ {QUOTE_FIELDS} }} {errors(ALLOWED, CONFLICT)} }}
}}"""

CREATE_COMPETITOR = f"""
mutation($input: CreateCompetitorInput!) {{
  createCompetitor(input: $input) {{ competitor {{ id name website notes }} {errors()} }}
}}"""

OPPORTUNITY = f"""
query($id: ID!) {{
  opportunity(id: $id) {{
    {OPPORTUNITY_FIELDS}
    quotes(first: 50) {{ totalCount nodes {{ {QUOTE_FIELDS} }} }}
    closeHistory {{ {CLOSE_FIELDS} }}
  }}
}}"""


class GraphQL(Protocol):
    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]: ...


def payload(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The mutation's payload, after checking the request raised no top-level error."""
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"][name]
    return result


def ok(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The payload of a mutation that must have succeeded."""
    result = payload(body, name)
    assert result["errors"] == [], result["errors"]
    return result


def error_codes(result: dict[str, Any]) -> list[str]:
    return [e["code"] for e in result["errors"]]


async def create_opportunity(gql: GraphQL, **fields: Any) -> dict[str, Any]:
    data = {
        "name": "Data platform migration",
        "customerName": "Fabrikam",
        "currencyCode": "EUR",
        "estimatedRevenue": "125000.50",
        **fields,
    }
    result = ok(await gql(CREATE_OPPORTUNITY, input=data), "createOpportunity")
    return dict(result["opportunity"])


async def create_quote(gql: GraphQL, opportunity_id: str, **fields: Any) -> dict[str, Any]:
    data = {"opportunityId": opportunity_id, "name": "Fixed price", "totalAmount": "1000", **fields}
    return dict(ok(await gql(CREATE_QUOTE, input=data), "createQuote")["quote"])


async def activate_quote(gql: GraphQL, quote_id: str) -> dict[str, Any]:
    return dict(
        ok(await gql(ACTIVATE_QUOTE, input={"quoteId": quote_id}), "activateQuote")["quote"]
    )


async def create_competitor(gql: GraphQL, name: str = "Proseware") -> dict[str, Any]:
    result = ok(await gql(CREATE_COMPETITOR, input={"name": name}), "createCompetitor")
    return dict(result["competitor"])


async def read_opportunity(gql: GraphQL, opportunity_id: str) -> dict[str, Any]:
    body = await gql(OPPORTUNITY, id=opportunity_id)
    assert "errors" not in body, body
    return dict(body["data"]["opportunity"])


def cost(requested: int) -> dict[str, Any]:
    """The extensions entry every response carries (tests/test_cost.py checks the model)."""
    return {"extensions": {"cost": {"requested": requested, "maximum": 10_000}}}
