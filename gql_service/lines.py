"""Quote and opportunity lines: the calculated amount, and the transitions that change lines.

Pure functions beside transitions.py (no I/O). ``line_amount`` is the one place an amount is
calculated: quantity x unit price - discount, rounded half up to the money scale, never
entered. A transition checks its guards through rules.py and returns the line's stored
fields; the service saves them and brings the parent's sum up to date in the same
transaction (line_repository.py).

Quote lines change only while the quote is DRAFT (QUOTE_READ_ONLY); opportunity lines only
while the opportunity is OPEN (OPPORTUNITY_ALREADY_CLOSED).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from gql_service.errors import ErrorCode, raise_if_any
from gql_service.models import MONEY_QUANTUM, Quote
from gql_service.records import LineRecord, OpportunityRecord
from gql_service.rules import (
    LINE_PRECISION,
    as_money,
    check_line_amount,
    check_opportunity_open,
    check_quote_draft,
)
from gql_service.transitions import Changes

# The entered fields of a line, in the order the schema lists them.
LINE_FIELDS = ("name", "billing_method", "transaction_class", "quantity", "unit_price", "discount")


def line_amount(quantity: Decimal, unit_price: Decimal, discount: Decimal | None) -> Decimal:
    """quantity x unit price - discount, at the money scale (half up): a line's amount."""
    with localcontext(prec=LINE_PRECISION, rounding=ROUND_HALF_UP):
        return (quantity * unit_price - (discount or 0)).quantize(MONEY_QUANTUM)


def priced(values: dict[str, Any]) -> Changes:
    """A line's entered fields (all of them) as stored, with the amount they make."""
    quantity, unit_price = as_money(values["quantity"]), as_money(values["unit_price"])
    discount = as_money(values["discount"])
    assert quantity is not None
    assert unit_price is not None
    amount = line_amount(quantity, unit_price, discount)
    raise_if_any(check_line_amount(quantity, unit_price, discount, amount))
    return {
        **values,
        "name": values["name"].strip(),
        "quantity": quantity,
        "unit_price": unit_price,
        "discount": discount,
        "amount": amount,
    }


def _edited(line: LineRecord, values: dict[str, Any]) -> Changes:
    """The line's stored fields after an edit of ``values`` (the others stay)."""
    return priced({name: getattr(line, name) for name in LINE_FIELDS} | values)


def _quote_guards(opportunity: OpportunityRecord, quote: Quote) -> None:
    raise_if_any(check_opportunity_open(opportunity))
    raise_if_any(check_quote_draft(quote, code=ErrorCode.QUOTE_READ_ONLY))


def add_quote_line(opportunity: OpportunityRecord, quote: Quote, values: dict[str, Any]) -> Changes:
    """A new line of a DRAFT quote of an OPEN opportunity."""
    _quote_guards(opportunity, quote)
    return priced(values)


def edit_quote_line(
    opportunity: OpportunityRecord, quote: Quote, line: LineRecord, values: dict[str, Any]
) -> Changes:
    """A DRAFT quote's line with new values; its amount follows them."""
    _quote_guards(opportunity, quote)
    return _edited(line, values)


def remove_quote_line(opportunity: OpportunityRecord, quote: Quote) -> None:
    """A DRAFT quote's line may go."""
    _quote_guards(opportunity, quote)


def add_opportunity_line(opportunity: OpportunityRecord, values: dict[str, Any]) -> Changes:
    """A new line of an OPEN opportunity."""
    raise_if_any(check_opportunity_open(opportunity))
    return priced(values)


def edit_opportunity_line(
    opportunity: OpportunityRecord, line: LineRecord, values: dict[str, Any]
) -> Changes:
    """An OPEN opportunity's line with new values; its amount follows them."""
    raise_if_any(check_opportunity_open(opportunity))
    return _edited(line, values)


def remove_opportunity_line(opportunity: OpportunityRecord) -> None:
    """An OPEN opportunity's line may go."""
    raise_if_any(check_opportunity_open(opportunity))
