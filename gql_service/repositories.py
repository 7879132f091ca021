"""Persistence for the write side: the only place where services' statements are built."""

from __future__ import annotations

import uuid
from collections import namedtuple
from collections.abc import Callable
from datetime import date, datetime
from functools import cache
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Executable, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import SQLModel, col

from gql_service import audit
from gql_service.announcements import CHANNEL
from gql_service.driver_writes import DriverTransaction
from gql_service.errors import ValidationFailedError, not_found
from gql_service.lean_statements import NeedsSqlAlchemy, StatementRunner, through_sqlalchemy
from gql_service.messages import msg
from gql_service.models import (
    OPEN_QUOTE_STATES,
    CloseRecordState,
    Competitor,
    Opportunity,
    OpportunityClose,
    ProjectContract,
    Quote,
    QuoteClose,
    QuoteState,
    QuoteStatusReason,
    table_of,
)
from gql_service.records import (
    QUOTE_CHANGE,
    ContractRecord,
    OpportunityCloseRecord,
    OpportunityRecord,
    QuoteChange,
    QuoteCloseRecord,
    QuoteCloseValues,
    QuoteRecord,
)
from gql_service.rules import OPEN_STATE, check_version
from gql_service.transitions import Changes, QuoteClosing

_OPPORTUNITY = table_of(Opportunity)
_QUOTE = table_of(Quote)
_QUOTE_CLOSE = table_of(QuoteClose)
_OPPORTUNITY_CLOSE = table_of(OpportunityClose)
_COMPETITOR = table_of(Competitor)

# The write statements are built once, with named placeholders, and run with a dict of values:
# building them per request cost more Python than running them. They are Core statements on the
# tables, so their RETURNING rows (which carry the record protocols' attributes) go to the
# payloads without ORM objects.


def _param(name: str, table: sa.Table, column: str) -> sa.BindParameter[Any]:
    """A placeholder typed as ``table``'s column, for select lists (nothing infers its type)."""
    return bindparam(name, type_=table.c[column].type)


# The open states written into the statements, as the domain fixes them, not as parameters.
# With parameters in their place the planner costed each statement's generic plan without
# knowing which states, and once W2-1000's closes had skewed the quote table's statistics it
# found that plan worse than a custom one and planned every execution anew: a W3 after
# W2-1000 ran at 1,358 requests/s against 1,906 after a W3. Otherwise the plans are the ones
# the parameters had (an index scan of the opportunity's quotes, filtered by state).
_OPEN_QUOTE = sa.or_(
    *(_QUOTE.c.state == sa.literal_column(f"'{state.value}'") for state in OPEN_QUOTE_STATES)
)
_OPPORTUNITY_VERSION = select(_OPPORTUNITY.c.version).where(_OPPORTUNITY.c.id == bindparam("p_id"))
_OPPORTUNITY_ROW = select(_OPPORTUNITY).where(_OPPORTUNITY.c.id == bindparam("p_id"))
_COMPETITOR_EXISTS = select(_COMPETITOR.c.id).where(_COMPETITOR.c.id == bindparam("p_id"))
_OPEN_QUOTES = (
    select(_QUOTE)
    .where((_QUOTE.c.opportunity_id == bindparam("p_opportunity_id")) & _OPEN_QUOTE)
    .order_by(_QUOTE.c.id)
)
_OPPORTUNITY_COLUMNS = len(_OPPORTUNITY.c)
_QUOTE_COLUMNS = len(_QUOTE.c)
# Where a closed quote's columns, and its record's, start in a row of _close_all_statement.
_CLOSED_QUOTE_AT = _OPPORTUNITY_COLUMNS + len(_OPPORTUNITY_CLOSE.c)
_QUOTE_RECORD_AT = _CLOSED_QUOTE_AT + _QUOTE_COLUMNS

# A closed quote and the close record its close wrote.
ClosedQuoteRow = tuple[QuoteRecord, QuoteCloseRecord]

# UPDATE opportunity SET version = version + 1 ... RETURNING: the write that takes the lock.
_LOCK_OPPORTUNITY = (
    sa.update(_OPPORTUNITY)
    .where(_OPPORTUNITY.c.id == bindparam("p_id"))
    .values(audit.touched(_OPPORTUNITY.c.version, bindparam("p_now"), bindparam("p_actor")))
    .returning(*_OPPORTUNITY.c)
)
_LOCK_OPPORTUNITY_AT_VERSION = _LOCK_OPPORTUNITY.where(
    _OPPORTUNITY.c.version == bindparam("p_version")
)


def _announcement() -> ColumnElement[Any]:
    """``announce_change(channel, '<id> <modified_at in epoch µs>')`` of the locked row
    (PostgreSQL): its NOTIFY, while some worker listens (migration 0005).

    In the locking UPDATE's RETURNING list, the announcement costs no statement of its own, and
    it belongs to the transaction: PostgreSQL delivers it on commit and drops it on rollback.
    The stamp is the transaction's clock, which every quote the transaction touches also gets
    as ``modified_at`` (announcements.py). With no listener registered, the transaction
    notifies nothing and so skips the cluster-wide lock that orders notifying commits.
    """
    stamp = sa.cast(sa.extract("epoch", _OPPORTUNITY.c.modified_at) * 1_000_000, sa.BigInteger)
    payload = sa.cast(_OPPORTUNITY.c.id, sa.Text) + " " + sa.cast(stamp, sa.Text)
    return sa.func.announce_change(CHANNEL, payload, type_=sa.Boolean).label("announced")


_ANNOUNCEMENT = _announcement()
_LOCK_ANNOUNCED = {
    False: _LOCK_OPPORTUNITY.returning(_ANNOUNCEMENT),
    True: _LOCK_OPPORTUNITY_AT_VERSION.returning(_ANNOUNCEMENT),
}


@cache
def _lock_if_open(at_version: bool, announce: bool) -> sa.Update:
    """The locking UPDATE of an opportunity in ``rules.OPEN_STATE`` only (the state written
    in, as the open quote states are)."""
    lock = _LOCK_OPPORTUNITY_AT_VERSION if at_version else _LOCK_OPPORTUNITY
    lock = lock.where(_OPPORTUNITY.c.state == sa.literal_column(f"'{OPEN_STATE.value}'"))
    return lock.returning(_ANNOUNCEMENT) if announce else lock


def _close_opportunity_update(
    fields: tuple[str, ...], *, prefix: str = "p_", closing: sa.CTE | None = None
) -> sa.Update:
    """``UPDATE opportunity SET <fields> WHERE NOT EXISTS (open quote) RETURNING``.

    Placeholders: <prefix>id, and <prefix><field> for each of the fields a close changes
    (transitions.py). ``closing``: a CTE of the quotes that the same statement closes, which
    its snapshot still sees open; they do not count.
    """
    open_quote = [_QUOTE.c.opportunity_id == bindparam(f"{prefix}id"), _OPEN_QUOTE]
    if closing is not None:
        open_quote.append(_QUOTE.c.id.not_in(sa.select(closing.c.id)))
    return (
        sa.update(_OPPORTUNITY)
        .where(_OPPORTUNITY.c.id == bindparam(f"{prefix}id"), ~sa.exists().where(*open_quote))
        .values({name: bindparam(f"{prefix}{name}") for name in fields})
        .returning(*_OPPORTUNITY.c)
    )


@cache
def _close_opportunity_statement(fields: tuple[str, ...]) -> sa.Update:
    """``_close_opportunity_update`` with the p_ placeholders."""
    return _close_opportunity_update(fields)


_RECORD_OPPORTUNITY_CLOSE = sa.insert(_OPPORTUNITY_CLOSE).returning(*_OPPORTUNITY_CLOSE.c)

# Tables' parts of a statement that returns several tables' columns side by side (a quote's
# close record is records.QuoteCloseValues).
_QuoteRow = namedtuple("_QuoteRow", _QUOTE.c.keys())  # type: ignore[misc]
_OpportunityCloseRow = namedtuple("_OpportunityCloseRow", _OPPORTUNITY_CLOSE.c.keys())  # type: ignore[misc]


def _part(record: Any, row: Any, start: int, end: int | None = None) -> Any:
    """The ``record`` named tuple of ``row[start:end]``, one table's part of a row that holds
    several tables' columns side by side."""
    return record._make(row[start:end])


def _split(row: Any, at: int, second: Any) -> tuple[Any, Any]:
    """A row of two tables' columns side by side (the first's, then the second's): the first
    table's part is the row itself (its extra columns are never read), the second's a
    ``second`` named tuple."""
    return row, _part(second, row, at)


def _all_closed(
    rows: list[Any],
) -> tuple[OpportunityRecord, OpportunityCloseRecord, list[ClosedQuoteRow]] | None:
    """The closed opportunity, its record, and each closed quote with its record, of the rows
    of ``_close_all_statement``; None if there are none (an open quote blocked the close)."""
    if not rows:
        return None
    first = rows[0]
    closed = [
        (
            _part(_QuoteRow, row, _CLOSED_QUOTE_AT, _QUOTE_RECORD_AT),
            _part(QuoteCloseValues, row, _QUOTE_RECORD_AT),
        )
        for row in rows
        if row.quote_id is not None
    ]
    return (
        first,
        _part(_OpportunityCloseRow, first, _OPPORTUNITY_COLUMNS, _CLOSED_QUOTE_AT),
        closed,
    )


def _labeled(source: sa.FromClause, prefix: str) -> list[ColumnElement[Any]]:
    """``source``'s columns under ``prefix``, beside another table's in one select list."""
    return [column.label(f"{prefix}{column.key}") for column in source.c]


def _recorded_close(moved: sa.CTE, recorded: tuple[str, ...]) -> sa.CTE:
    """``INSERT INTO opportunity_close ... SELECT <placeholders> FROM moved RETURNING``: one
    record per opportunity the CTE ``moved`` closed. Placeholders: r_<column> for each of
    the ``recorded`` columns."""
    values = sa.select(*(_param(f"r_{name}", _OPPORTUNITY_CLOSE, name) for name in recorded))
    return (
        sa.insert(_OPPORTUNITY_CLOSE)
        .from_select(list(recorded), values.select_from(moved))
        .returning(*_OPPORTUNITY_CLOSE.c)
        .cte("record")
    )


@cache
def _close_and_record_statement(
    fields: tuple[str, ...], recorded: tuple[str, ...]
) -> sa.Select[Any]:
    """PostgreSQL: ``_close_opportunity_statement`` and its close record's INSERT in one
    statement (data-modifying CTEs), one round trip instead of two.

    ``WITH moved AS (UPDATE ... RETURNING), record AS (INSERT ... SELECT ... FROM moved
    RETURNING) SELECT moved.*, record.* FROM moved JOIN record ...``: no row, and nothing
    written, when an open quote blocks the close.
    """
    moved = _close_opportunity_statement(fields).cte("moved")
    record = _recorded_close(moved, recorded)
    return sa.select(*moved.c, *_labeled(record, "record_")).select_from(
        moved.join(record, record.c.opportunity_id == moved.c.id)
    )


_QUOTE_CLOSE_COLUMNS = [
    "quote_id",
    "quote_number",
    "revision_number",
    "status_reason",
    "close_date",
    "description",
    "batch_id",
    "created_at",
    "created_by",
]


def _quote_close_values(source: sa.FromClause, reason: ColumnElement[Any]) -> sa.Select[Any]:
    """The select list of a quote close record, read from ``source``'s quote columns."""
    return sa.select(
        source.c.id,
        source.c.quote_number,
        source.c.revision_number,
        reason,
        _param("p_close_date", _QUOTE_CLOSE, "close_date"),
        _param("p_description", _QUOTE_CLOSE, "description"),
        _param("p_batch_id", _QUOTE_CLOSE, "batch_id"),
        _param("p_now", _QUOTE_CLOSE, "created_at"),
        _param("p_actor", _QUOTE_CLOSE, "created_by"),
    )


@cache
def _closing_quotes(
    one: bool, winner: bool
) -> tuple[ColumnElement[bool], ColumnElement[Any], sa.Update]:
    """Which quotes a close takes, the reason it gives each, and ``UPDATE quote ... RETURNING``
    that closes them.

    Placeholders: p_opportunity_id, p_state, p_status_reason, p_close_date, p_now, p_actor,
    and p_quote_id if ``one``, p_winner_id if ``winner`` (closed as WON/WON instead).
    """
    which = (_QUOTE.c.opportunity_id == bindparam("p_opportunity_id")) & _OPEN_QUOTE
    if one:
        which &= _QUOTE.c.id == bindparam("p_quote_id")
    new_state: ColumnElement[Any] = _param("p_state", _QUOTE, "state")
    reason: ColumnElement[Any] = _param("p_status_reason", _QUOTE, "status_reason")
    if winner:
        won = _QUOTE.c.id == bindparam("p_winner_id")
        new_state = sa.case((won, sa.literal(QuoteState.WON, _QUOTE.c.state.type)), else_=new_state)
        reason = sa.case(
            (won, sa.literal(QuoteStatusReason.WON, _QUOTE.c.status_reason.type)), else_=reason
        )
    closed = (
        sa.update(_QUOTE)
        .where(which)
        .values(
            state=new_state,
            status_reason=reason,
            closed_on=bindparam("p_close_date"),
            **audit.touched(_QUOTE.c.version, bindparam("p_now"), bindparam("p_actor")),
        )
        .returning(*_QUOTE.c)
    )
    return which, reason, closed


@cache
def _close_quotes_statements(one: bool, winner: bool) -> tuple[sa.Insert, sa.Update]:
    """``INSERT INTO quote_close ... SELECT ... FROM quote`` and ``_closing_quotes``' UPDATE.

    The INSERT's placeholders are the UPDATE's and p_description, p_batch_id.
    """
    which, reason, closed = _closing_quotes(one, winner)
    copied = _quote_close_values(_QUOTE, reason).where(which)
    recorded = (
        sa.insert(_QUOTE_CLOSE).from_select(_QUOTE_CLOSE_COLUMNS, copied).returning(*_QUOTE_CLOSE.c)
    )
    return recorded, closed


def _recorded_quote_closes(closed: sa.CTE, name: str, *, returning: bool = True) -> sa.CTE:
    """``INSERT INTO quote_close ... SELECT ... FROM closed [RETURNING]``, in quote id order:
    a close record for each quote the CTE ``closed`` closed."""
    copied = _quote_close_values(closed, closed.c.status_reason).order_by(closed.c.id)
    recorded = sa.insert(_QUOTE_CLOSE).from_select(_QUOTE_CLOSE_COLUMNS, copied)
    return (recorded.returning(*_QUOTE_CLOSE.c) if returning else recorded).cte(name)


@cache
def _close_and_record_quotes_changes(one: bool, winner: bool) -> sa.Select[Any]:
    """``_close_and_record_quotes_statement`` returning only what the close changed of each
    quote (records.QUOTE_CHANGE), in quote id order, and nothing of the records it wrote.

    ``WITH closed AS (UPDATE quote ... RETURNING), record AS (INSERT INTO quote_close ...
    SELECT ... FROM closed) SELECT closed.id, closed.state, ... ORDER BY closed.id``: the
    INSERT runs though nothing reads it, as every data-modifying CTE does. For 30 quotes, 7
    columns each in place of 27 took a sixth of closeQuotes' worker CPU away (asyncpg's
    decoding and the types' processors: 811 -> 678 us a request in ``make bench-ab``) and
    some of the database's (1,348 -> 1,303).
    """
    closed = _closing_quotes(one, winner)[2].cte("closed")
    record = _recorded_quote_closes(closed, "record", returning=False)
    return (
        sa.select(*(closed.c[name] for name in QUOTE_CHANGE)).add_cte(record).order_by(closed.c.id)
    )


@cache
def _close_and_record_quotes_statement(one: bool, winner: bool) -> sa.Select[Any]:
    """PostgreSQL: both of ``_close_quotes_statements`` in one statement, one round trip.

    ``WITH closed AS (UPDATE quote ... RETURNING), record AS (INSERT INTO quote_close ...
    SELECT ... FROM closed RETURNING) SELECT closed.*, record.* ... ORDER BY closed.id``.
    """
    closed = _closing_quotes(one, winner)[2].cte("closed")
    record = _recorded_quote_closes(closed, "record")
    return (
        sa.select(*closed.c, *_labeled(record, "record_"))
        .select_from(closed.join(record, record.c.quote_id == closed.c.id))
        .order_by(closed.c.id)
    )


@cache
def _close_all_statement(fields: tuple[str, ...], recorded: tuple[str, ...]) -> sa.Select[Any]:
    """PostgreSQL, a close with its open quotes: the quotes' close and records, then the
    opportunity's close and record, in one statement.

    One row per closed quote (one with empty quote columns when there was none): the
    opportunity's columns, its record's (``record_``), the quote's (``quote_``) and its
    record's (``quote_record_``). Placeholders: the quotes' (p_, as ``_closing_quotes``), the
    opportunity's as ``_close_opportunity_update`` with o_, and the record's r_.
    """
    closed = _closing_quotes(False, False)[2].cte("closed")
    quote_record = _recorded_quote_closes(closed, "quote_record")
    quotes = (
        sa.select(*_labeled(closed, "quote_"), *_labeled(quote_record, "quote_record_"))
        .select_from(closed.join(quote_record, quote_record.c.quote_id == closed.c.id))
        .subquery("quotes")
    )
    moved = _close_opportunity_update(fields, prefix="o_", closing=closed).cte("moved")
    record = _recorded_close(moved, recorded)
    return (
        sa.select(*moved.c, *_labeled(record, "record_"), *quotes.c)
        .select_from(
            moved.join(record, record.c.opportunity_id == moved.c.id).outerjoin(quotes, sa.true())
        )
        .order_by(quotes.c.quote_id)
    )


# --- project contracts ---
_CONTRACT = table_of(ProjectContract)
_RECORD_CONTRACT = sa.insert(_CONTRACT).returning(*_CONTRACT.c)


class Repository:
    """Statements of one transaction, stamped with its actor and clock."""

    def __init__(
        self,
        connection: AsyncConnection | None,
        *,
        actor: str,
        now: datetime,
        announce: bool = False,
        runner: StatementRunner | None = None,
    ) -> None:
        self._connection = connection
        self._session: AsyncSession | None = None
        self.actor = actor
        self.now = now
        # True: the locking UPDATE also sends the change's NOTIFY (PostgreSQL, subscriptions on).
        self.announce = announce
        # The opportunities this transaction locked, and so changed (stamped ``now``).
        self.changed: set[int] = set()
        # Runs prebuilt statements on the driver (lean_statements.py on psycopg, or
        # driver_writes.py on asyncpg without a SQLAlchemy connection), where the unit of
        # work found that it can.
        self._runner = runner
        self._dialect = (runner.dialect if runner is not None else self.connection.dialect).name

    @property
    def connection(self) -> AsyncConnection:
        """SQLAlchemy's connection; on asyncpg there is none, and the unit of work runs the
        work again on one (NeedsSqlAlchemy)."""
        if self._connection is None:
            raise NeedsSqlAlchemy("SQLAlchemy's connection")
        return self._connection

    async def _rows(self, stmt: Executable, params: dict[str, Any]) -> list[Any]:
        """A prebuilt statement's rows: on psycopg itself where nothing listens to statements
        (lean_statements.py), else through SQLAlchemy."""
        if self._runner is None:
            return await through_sqlalchemy(self.connection, stmt, params)
        return await self._runner.rows(stmt, params)

    @property
    def today(self) -> date:
        return self.now.date()

    @property
    def session(self) -> AsyncSession:
        """An ORM session in the transaction, made on first use: most use cases run prebuilt
        Core statements on the connection alone, and a session costs a close a tenth of its
        CPU for nothing."""
        if self._session is None:
            if self._runner is not None:
                self._runner.join_sqlalchemy()
            self._session = AsyncSession(self.connection, expire_on_commit=False)
        return self._session

    async def flush(self) -> None:
        """Send what the session holds, before the transaction commits."""
        if self._session is not None:
            await self._session.flush()

    async def close(self) -> None:
        """Close the session, if any: its objects are detached and stay readable after the
        transaction, committed or rolled back."""
        if self._session is not None:
            await self._session.close()

    async def lock_opportunity(
        self, opportunity_id: int, *, expected_version: int | None
    ) -> Opportunity:
        """Bump the opportunity's version as the transaction's first statement.

        The write takes the row lock (PostgreSQL) or the database write lock (SQLite) before
        anything is read, so every transaction that changes the opportunity's state or the
        set of its open quotes is serialised with the others on the same opportunity. Returns
        the ORM instance, for use cases that change it through the session.
        """
        condition = col(Opportunity.id) == opportunity_id
        if expected_version is not None:
            condition &= col(Opportunity.version) == expected_version
        locked = await self._bump(condition)
        if locked is not None:
            return locked
        raise await self._not_locked(opportunity_id, expected_version)

    async def lock_opportunity_row(
        self, opportunity_id: int, *, expected_version: int | None
    ) -> OpportunityRecord:
        """``lock_opportunity`` with the same UPDATE, prebuilt, returning the row (no ORM)."""
        params = self._lock_params(opportunity_id, expected_version)
        rows = await self._rows(self._lock_statement(expected_version is not None), params)
        if rows:
            locked: OpportunityRecord = rows[0]
            self.changed.add(opportunity_id)
            return locked
        raise await self._not_locked(opportunity_id, expected_version)

    def _lock_statement(self, at_version: bool, *, if_open: bool = False) -> sa.Update:
        """The prebuilt locking UPDATE (``lock_opportunity_row``); ``if_open``: of an
        opportunity in ``rules.OPEN_STATE`` only."""
        if if_open:
            return _lock_if_open(at_version, self.announce)
        if self.announce:
            return _LOCK_ANNOUNCED[at_version]
        return _LOCK_OPPORTUNITY_AT_VERSION if at_version else _LOCK_OPPORTUNITY

    def _lock_params(self, opportunity_id: int, version: int | None) -> dict[str, Any]:
        params: dict[str, Any] = {"p_id": opportunity_id, "p_now": self.now, "p_actor": self.actor}
        if version is not None:
            params["p_version"] = version
        return params

    async def opportunity_row(self, opportunity_id: int) -> OpportunityRecord | None:
        """The opportunity as it is now, unlocked (``close_opportunity_unlocked``)."""
        rows = await self._rows(_OPPORTUNITY_ROW, {"p_id": opportunity_id})
        return cast(OpportunityRecord, rows[0]) if rows else None

    async def _not_locked(
        self, opportunity_id: int, expected_version: int | None
    ) -> ValidationFailedError:
        """Why the locking UPDATE found no row: no such opportunity, or another version."""
        found = await self._rows(_OPPORTUNITY_VERSION, {"p_id": opportunity_id})
        if not found:
            return not_found(msg("No opportunity has this id."), "opportunity")
        return ValidationFailedError(check_version("opportunity", expected_version, found[0][0]))

    async def lock_quote(
        self, quote_id: int, *, expected_version: int | None
    ) -> tuple[Opportunity, Quote]:
        """Lock the quote's opportunity first (as ``lock_opportunity``), then load the quote."""
        owner = select(col(Quote.opportunity_id)).where(col(Quote.id) == quote_id).scalar_subquery()
        opportunity = await self._bump(col(Opportunity.id) == owner)
        if opportunity is None:
            raise not_found(msg("No quote has this id."), "quote")
        quote = await self.session.get(Quote, quote_id, populate_existing=True)
        if quote is None:  # pragma: no cover - the update above found its opportunity
            raise not_found(msg("No quote has this id."), "quote")
        conflict = check_version("quote", expected_version, quote.version)
        if conflict:
            raise ValidationFailedError(conflict)
        return opportunity, quote

    async def lock_opportunity_of(
        self,
        owner: ColumnElement[Any],
        *,
        expected_version: int | None,
        missing: ValidationFailedError,
    ) -> Opportunity:
        """``lock_opportunity`` for the opportunity that ``owner`` (a scalar subquery, e.g.
        a line's) names; ``missing`` when it names none."""
        condition = col(Opportunity.id) == owner
        if expected_version is not None:
            condition &= col(Opportunity.version) == expected_version
        locked = await self._bump(condition)
        if locked is not None:
            return locked
        actual = await self.session.scalar(
            select(col(Opportunity.version)).where(col(Opportunity.id) == owner)
        )
        if actual is None:
            raise missing
        raise ValidationFailedError(check_version("opportunity", expected_version, actual))

    def created(self) -> dict[str, Any]:
        """The audit stamps of a row this transaction creates."""
        return audit.created(self.now, self.actor)

    async def update(self, row: Opportunity | Quote, changes: Changes) -> None:
        """Write a transition's changes to a loaded row, stamped, and flush them.

        The opportunity was stamped by the lock that began the transaction (once per
        transaction, however many of its rows change); any other row is stamped here.
        """
        for name, value in changes.items():
            setattr(row, name, value)
        if not isinstance(row, Opportunity):
            audit.stamp(row, self.now, self.actor)
        await self.add(row)

    async def _bump(self, condition: ColumnElement[bool]) -> Opportunity | None:
        """UPDATE ... SET version = version + 1 ... RETURNING: the write that takes the lock."""
        stmt = (
            update(Opportunity)
            .where(condition)
            .values(audit.touched(col(Opportunity.version), self.now, self.actor))
            .returning(Opportunity)
            .execution_options(populate_existing=True)
        )
        if self.announce:
            stmt = stmt.returning(_ANNOUNCEMENT)
        locked = (await self.session.scalars(stmt)).one_or_none()
        if locked is not None and locked.id is not None:
            self.changed.add(locked.id)
        return locked

    async def open_quotes(self, opportunity_id: int) -> list[QuoteRecord]:
        """The opportunity's open quotes in id order, as rows (no ORM session: a close that
        they block stays on the driver that tried it)."""
        return await self._rows(_OPEN_QUOTES, {"p_opportunity_id": opportunity_id})

    @property
    def _one_round_trip(self) -> bool:
        """Whether a write and its record's INSERT go as one statement: PostgreSQL runs
        data-modifying CTEs, SQLite does not."""
        return self._dialect == "postgresql"

    async def close_opportunity(
        self,
        opportunity_id: int,
        changes: Changes,
        record: Changes,
        *,
        quotes: QuoteClosing | None = None,
    ) -> tuple[OpportunityRecord, OpportunityCloseRecord, list[ClosedQuoteRow]] | None:
        """Move the opportunity to its closed state unless one of its quotes is open, and write
        the close ``record`` that describes it; first close the open quotes that ``quotes``
        names, if given (as ``close_open_quotes``). None when an open quote
        blocks the close: the caller rolls back.

        ``UPDATE ... WHERE NOT EXISTS (open quote) RETURNING``, then ``INSERT INTO
        opportunity_close ... RETURNING``: on PostgreSQL one statement, with the quotes' close
        when it takes them all; on SQLite one statement each. The caller holds the
        opportunity's lock, so the answer holds until commit.
        """
        values = {**record, "created_at": self.now, "created_by": self.actor}
        if self._one_round_trip and quotes is not None and quotes.all_open:
            return await self._close_all(opportunity_id, changes, values, quotes)
        closed = [] if quotes is None else await self.close_open_quotes(quotes)
        done = await self._close_and_record(opportunity_id, changes, values)
        return None if done is None else (*done, closed)

    async def _close_and_record(
        self, opportunity_id: int, changes: Changes, values: Changes
    ) -> tuple[OpportunityRecord, OpportunityCloseRecord] | None:
        if self._one_round_trip:
            params = self._close_params(opportunity_id, changes, values)
            stmt = _close_and_record_statement(tuple(changes), tuple(values))
            rows = await self._rows(stmt, params)
            return _split(rows[0], _OPPORTUNITY_COLUMNS, _OpportunityCloseRow) if rows else None
        params = self._close_params(opportunity_id, changes, {})
        connection = self.connection
        moved = (
            await connection.execute(_close_opportunity_statement(tuple(changes)), params)
        ).one_or_none()
        if moved is None:
            return None
        return moved, (await connection.execute(_RECORD_OPPORTUNITY_CLOSE, values)).one()

    @staticmethod
    def _close_params(opportunity_id: int, changes: Changes, values: Changes) -> dict[str, Any]:
        """``_close_and_record_statement``'s placeholders' values (without ``values``,
        ``_close_opportunity_statement``'s)."""
        params = {f"p_{name}": value for name, value in changes.items()}
        params["p_id"] = opportunity_id
        params.update({f"r_{name}": value for name, value in values.items()})
        return params

    async def _close_all(
        self,
        opportunity_id: int,
        changes: Changes,
        values: Changes,
        quotes: QuoteClosing,
    ) -> tuple[OpportunityRecord, OpportunityCloseRecord, list[ClosedQuoteRow]] | None:
        """PostgreSQL: the quotes' close and the opportunity's in one statement."""
        params = self._close_all_params(opportunity_id, changes, values, quotes)
        stmt = _close_all_statement(tuple(changes), tuple(values))
        return _all_closed(await self._rows(stmt, params))

    def _close_all_params(
        self, opportunity_id: int, changes: Changes, values: Changes, quotes: QuoteClosing
    ) -> dict[str, Any]:
        """``_close_all_statement``'s placeholders' values."""
        params = self._quote_params(quotes)
        params.update({f"o_{name}": value for name, value in changes.items()}, o_id=opportunity_id)
        params.update({f"r_{name}": value for name, value in values.items()})
        return params

    async def close_opportunity_unlocked(
        self,
        opportunity_id: int,
        version: int | None,
        changes: Changes,
        record: Changes,
        quotes: QuoteClosing | None,
        *,
        if_open: bool,
    ) -> tuple[OpportunityRecord, OpportunityCloseRecord, list[ClosedQuoteRow]] | None:
        """PostgreSQL on asyncpg, outside a transaction: ``close_opportunity`` as one call that
        locks the opportunity first, as the transaction does, and then closes it (with its
        open quotes, if ``quotes`` takes them all) by the same statement as the transaction's
        (locked_calls.py). The lock takes only the opportunity at ``version`` (the one the
        rules were checked on, or the client's expected one) and, ``if_open``, only in the
        state the rules require (``rules.OPEN_STATE``: changes that were worked out without
        reading the row). None when it is not, or an open quote blocks the close: nothing was
        written, and the caller runs the locked work."""
        runner = self._runner
        assert isinstance(runner, DriverTransaction), "asyncpg, outside a transaction"
        values = {**record, "created_at": self.now, "created_by": self.actor}
        stmt: Executable
        if quotes is None:
            params = self._close_params(opportunity_id, changes, values)
            stmt = _close_and_record_statement(tuple(changes), tuple(values))
        elif quotes.all_open:
            params = self._close_all_params(opportunity_id, changes, values, quotes)
            stmt = _close_all_statement(tuple(changes), tuple(values))
        else:
            return None
        lock = self._lock_statement(version is not None, if_open=if_open)
        lock_params = self._lock_params(opportunity_id, version)
        rows = await runner.rows_after_lock(lock, lock_params, stmt, params)
        if not rows:
            return None
        self.changed.add(opportunity_id)
        if quotes is None:
            return (*_split(rows[0], _OPPORTUNITY_COLUMNS, _OpportunityCloseRow), [])
        return _all_closed(rows)

    async def close_quotes_unlocked(
        self, version: int | None, closing: QuoteClosing
    ) -> tuple[OpportunityRecord, list[ClosedQuoteRow]] | None:
        """PostgreSQL on asyncpg, outside a transaction: the lock (``lock_opportunity_row``)
        and ``close_open_quotes`` as one call that takes the lock first, only of an
        opportunity in ``rules.OPEN_STATE`` and at ``version`` if given (locked_calls.py):
        the opportunity as locked and the closed quotes. None when it is not: nothing was
        written, and the caller runs the locked work."""
        done = await self._locked_quotes_close(version, closing, _close_and_record_quotes_statement)
        if done is None:
            return None
        locked, rows = done
        return locked, [_split(row, _QUOTE_COLUMNS, QuoteCloseValues) for row in rows]

    async def close_quotes_unlocked_changes(
        self, version: int | None, closing: QuoteClosing
    ) -> tuple[OpportunityRecord, list[QuoteChange]] | None:
        """``close_quotes_unlocked``, with only what the close changed of each quote
        (``_close_and_record_quotes_changes``); it writes the same close records."""
        return await self._locked_quotes_close(version, closing, _close_and_record_quotes_changes)

    async def _locked_quotes_close(
        self,
        version: int | None,
        closing: QuoteClosing,
        statement: Callable[[bool, bool], sa.Select[Any]],
    ) -> tuple[OpportunityRecord, list[Any]] | None:
        runner = self._runner
        assert isinstance(runner, DriverTransaction), "asyncpg, outside a transaction"
        one, winner = closing.quote_id is not None, closing.winner_id is not None
        done = await runner.locked_and_rows(
            self._lock_statement(version is not None, if_open=True),
            self._lock_params(closing.opportunity_id, version),
            statement(one, winner),
            self._quote_params(closing),
        )
        if done is not None:
            self.changed.add(closing.opportunity_id)
        return done

    def _quote_params(self, closing: QuoteClosing) -> dict[str, Any]:
        """The values of ``_closing_quotes``' and ``_quote_close_values``' placeholders; the
        close records of one close share a new batch id."""
        params: dict[str, Any] = {
            "p_opportunity_id": closing.opportunity_id,
            "p_state": closing.state,
            "p_status_reason": closing.status_reason,
            "p_close_date": closing.close_date,
            "p_description": closing.description,
            "p_batch_id": str(uuid.uuid4()),
            "p_now": self.now,
            "p_actor": self.actor,
        }
        if closing.quote_id is not None:
            params["p_quote_id"] = closing.quote_id
        if closing.winner_id is not None:
            params["p_winner_id"] = closing.winner_id
        return params

    async def close_open_quotes(self, closing: QuoteClosing) -> list[ClosedQuoteRow]:
        """Close the opportunity's open quotes (only ``quote_id`` if given) and write their close
        records under one batch id, whatever their number: one statement on PostgreSQL, two on
        SQLite.

        ``UPDATE quote ... RETURNING`` closes them and ``INSERT INTO quote_close ... SELECT``
        writes their records; ``winner_id`` is closed as WON/WON instead. On SQLite the INSERT
        goes first and selects the same rows as the UPDATE, because the caller holds the
        opportunity's lock, which every change to the set of its open quotes takes first.
        Returns each quote with its record, in id order.
        """
        params = self._quote_params(closing)
        one, winner = closing.quote_id is not None, closing.winner_id is not None
        if self._one_round_trip:
            stmt = _close_and_record_quotes_statement(one, winner)
            rows = await self._rows(stmt, params)
            return [_split(row, _QUOTE_COLUMNS, QuoteCloseValues) for row in rows]
        connection = self.connection
        recorded, closed = _close_quotes_statements(one, winner)
        # The records first: once the UPDATE ran, nothing tells the closed rows from older ones.
        records = {r.quote_id: r for r in await connection.execute(recorded, params)}
        quotes = sorted(await connection.execute(closed, params), key=lambda q: int(q.id))
        # SQLite returns rows in no specified order: pair them by quote id.
        return [(quote, records[quote.id]) for quote in quotes]

    async def cancel_completed_closes(
        self, opportunity_id: int, changes: Changes
    ) -> list[OpportunityClose]:
        """Apply a reopening's ``changes`` to the opportunity's COMPLETED close records, in one
        statement, stamped as canceled now by the actor (audit.py)."""
        stmt = (
            update(OpportunityClose)
            .where(
                col(OpportunityClose.opportunity_id) == opportunity_id,
                col(OpportunityClose.state) == CloseRecordState.COMPLETED,
            )
            .values(**changes, **audit.canceled(self.now, self.actor))
            .returning(OpportunityClose)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        canceled = (await self.session.scalars(stmt)).all()
        return sorted(canceled, key=lambda c: c.id or 0, reverse=True)

    async def record_contract(self, values: Changes) -> ContractRecord:
        """``INSERT INTO project_contract ... RETURNING``: a new contract, stamped."""
        params = {**values, **audit.inserted(self.now, self.actor)}
        contract: ContractRecord = (await self.connection.execute(_RECORD_CONTRACT, params)).one()
        return contract

    async def competitor_exists(self, competitor_id: int) -> bool:
        """Whether a competitor has this id (a prebuilt statement: no ORM session)."""
        return bool(await self._rows(_COMPETITOR_EXISTS, {"p_id": competitor_id}))

    async def competitor_named(self, name: str) -> Competitor | None:
        stmt = select(Competitor).where(func.lower(col(Competitor.name)) == name.lower())
        return (await self.session.scalars(stmt)).first()

    async def add(self, *objects: SQLModel) -> None:
        self.session.add_all(objects)
        await self.session.flush()
