"""A realistic demo data set, built through the services as a user would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service import line_services, quote_services, services
from gql_service.models import (
    BillingMethod,
    CloseOutcome,
    ForecastCategory,
    Opportunity,
    OpportunityStatusReason,
    QuoteStatusReason,
    TransactionClass,
)
from gql_service.unit_of_work import UnitOfWork

CUSTOMERS = [
    ("Contoso Pharmaceuticals", "Lab information system rollout", "EUR", "480000"),
    ("Fabrikam Inc.", "Data platform migration", "USD", "1250000"),
    ("Northwind Traders", "Warehouse automation pilot", "USD", "310000"),
    ("Adventure Works Cycles", "Dealer portal redesign", "EUR", "185000.50"),
    ("Tailspin Toys", "ERP implementation phase 2", "GBP", "920000"),
    ("Wide World Importers", "Customs compliance assessment", "USD", "64000"),
    ("Litware Inc.", "Security operations centre build-out", "EUR", "735000"),
    ("Alpine Ski House", "Booking system modernisation", "CHF", "150000"),
]


async def is_empty(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        count = await connection.scalar(select(func.count()).select_from(Opportunity))
    return not count


async def seed_demo(engine: AsyncEngine, *, actor: str = "demo-seed") -> int:
    """Load the demo data set; returns how many opportunities were created."""
    uow = UnitOfWork(engine, actor=actor)
    rival = await services.create_competitor(
        uow, name="Proseware Consulting", website="https://proseware.example", notes="Low bids."
    )
    await services.create_competitor(
        uow, name="Trey Research", website="https://treyresearch.example", notes=None
    )
    await services.create_competitor(uow, name="Coho Winery Partners")
    today = datetime.now(UTC).date()  # the services' clock is UTC too
    opportunities = []
    for index, (customer, name, currency, revenue) in enumerate(CUSTOMERS):
        opportunities.append(
            await services.create_opportunity(
                uow,
                name=name,
                customer_name=customer,
                currency_code=currency,
                estimated_revenue=Decimal(revenue),
                estimated_close_date=today + timedelta(days=30 * (index + 1)),
                description=f"{name} for {customer}.",
            )
        )
    o = [int(opportunity.id or 0) for opportunity in opportunities]

    async def quote(opportunity_id: int, name: str, amount: str) -> int:
        created = await quote_services.create_quote(
            uow,
            opportunity_id=opportunity_id,
            name=name,
            total_amount=Decimal(amount),
            effective_from=today,
            effective_to=today + timedelta(days=60),
        )
        return int(created.id or 0)

    # 0: open, one draft and one active quote (blocks closing).
    await quote(o[0], "Initial estimate", "450000")
    await quote_services.activate_quote(uow, quote_id=await quote(o[0], "Fixed price", "470000"))
    # 1: open, on hold, with a revised quote (CLOSED/REVISED plus a new draft revision).
    revised = await quote(o[1], "Migration, time and materials", "1200000")
    await quote_services.activate_quote(uow, quote_id=revised)
    await quote_services.revise_quote(uow, quote_id=revised)
    await services.update_opportunity(
        uow,
        opportunity_id=o[1],
        status_reason=OpportunityStatusReason.ON_HOLD,
        forecast_category=ForecastCategory.BEST_CASE,
    )
    # 2: won through winQuote (its two lines become the draft contract's), then closed as WON.
    winner = await quote(o[2], "Pilot, fixed price", "305000")
    await quote(o[2], "Pilot, time and materials", "330000")
    for name, method, kind, quantity, price in (
        ("Pilot delivery", BillingMethod.FIXED_PRICE, None, 1, 280000),
        ("Operator training", BillingMethod.TIME_AND_MATERIAL, TransactionClass.TIME, 50, 500),
    ):
        await line_services.add_quote_line(
            uow,
            quote_id=winner,
            name=name,
            billing_method=method,
            transaction_class=kind,
            quantity=Decimal(quantity),
            unit_price=Decimal(price),
        )
    await quote_services.win_quote(uow, quote_id=winner, description="Signed by the COO.")
    await services.close_opportunity(
        uow, opportunity_id=o[2], outcome=CloseOutcome.WON, description="Pilot starts next month."
    )
    # 3: lost to a competitor after closing its quotes in one go.
    await quote(o[3], "Portal redesign", "180000")
    await quote_services.activate_quote(uow, quote_id=await quote(o[3], "Portal + app", "240000"))
    await services.close_quotes(uow, opportunity_id=o[3], description="Customer chose a rival.")
    await services.close_opportunity(
        uow,
        opportunity_id=o[3],
        outcome=CloseOutcome.LOST,
        status_reason=OpportunityStatusReason.OUT_SOLD,
        competitor_id=rival.id,
        description="Proseware came in 20% cheaper.",
    )
    # 4: lost, reopened, then won: two close records, the first CANCELED.
    await services.close_opportunity(
        uow, opportunity_id=o[4], outcome=CloseOutcome.LOST, description="Budget frozen."
    )
    await services.reopen_opportunity(uow, opportunity_id=o[4])
    await services.close_opportunity(
        uow, opportunity_id=o[4], outcome=CloseOutcome.WON, actual_revenue=Decimal("905000")
    )
    # 5: open with a canceled quote only.
    await quote_services.close_quote(
        uow,
        quote_id=await quote(o[5], "Assessment", "64000"),
        status_reason=QuoteStatusReason.CANCELED,
    )
    # 6: closed with closeOpenQuotes in one step.
    await quote(o[6], "SOC build-out", "735000")
    await services.close_opportunity(
        uow,
        opportunity_id=o[6],
        outcome=CloseOutcome.LOST,
        close_open_quotes=True,
        description="Project canceled by the customer.",
    )
    # 7: open, no quotes yet; its estimate is calculated from two lines (to the same 150000).
    await services.update_opportunity(uow, opportunity_id=o[7], is_revenue_system_calculated=True)
    await line_services.add_opportunity_line(
        uow,
        opportunity_id=o[7],
        name="Booking engine",
        billing_method=BillingMethod.TIME_AND_MATERIAL,
        transaction_class=TransactionClass.TIME,
        quantity=Decimal(400),
        unit_price=Decimal(250),
    )
    await line_services.add_opportunity_line(
        uow,
        opportunity_id=o[7],
        name="Go-live support",
        billing_method=BillingMethod.FIXED_PRICE,
        transaction_class=TransactionClass.FEE,
        quantity=Decimal(1),
        unit_price=Decimal(55000),
        discount=Decimal(5000),
    )
    return len(opportunities)
