"""A lock and the write it guards as one call: a PL/pgSQL function per pair of statements.

A close's transaction on PostgreSQL is four round trips: BEGIN, the locking UPDATE, the one
statement that closes and records, COMMIT. Each costs the worker ~50-60 µs of CPU and the
server some too, more than the statements themselves. A close tried first outside a
transaction (unit_of_work.py, services.close_opportunity) calls one function whose body is
the same two statements, in the same order:

    UPDATE opportunity SET version = version + 1, ... WHERE id = $1 AND <what the rules'
    verdict needs> RETURNING ... INTO gql_locked;     -- the lock, first
    IF NOT FOUND THEN RETURN; END IF;                  -- not as required: nothing written
    RETURN QUERY <the close>;                          -- reads the quotes after the lock
    IF NOT FOUND THEN RAISE ... 'GQ001'; END IF;       -- blocked: the lock's bump undone

A VOLATILE function takes a fresh snapshot for each statement it runs, so the close sees
every transaction that committed before the lock was granted, exactly as the transaction's
second statement does (the lock-first design: README, Concurrency). What the lock requires
makes the rules' verdict hold on the row as locked: the version the rules were checked on,
after a read (every write of an opportunity or of its quotes bumps its version first), or,
where the close's changes do not depend on the row, the one state the rules accept. The call
commits itself: one or two round trips instead of four. It waits for the lock only a moment
(``LOCK_WAIT``): a lock held longer fails it, nothing written, and the transaction takes over.

The function is made from the statements' own SQL as SQLAlchemy compiles them for asyncpg
(their ``$n`` placeholders renumbered into the function's arguments), on each connection as
it first needs it, in the session's temporary schema (``pg_temp``): nothing is installed in
the database, no statement is written twice, and the argument and column types are the ones
the server gives the statements when it prepares them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from weakref import WeakKeyDictionary

import asyncpg

# The SQLSTATE of "the write after the lock wrote nothing": the statement fails, so that the
# lock's own write is undone with it.
NOTHING_WRITTEN = "GQ001"

# How long the call waits for the lock: a moment. A lock held longer sends the close to the
# transaction, which waits for it there: a call that commits itself, left waiting in the lock's
# queue by a client that gave up (its deadline, a disconnect), would still write once granted,
# where a transaction's lock wait ends with its connection and writes nothing.
LOCK_WAIT = "1ms"
# Once the lock is held, the write waits as long as it must (the statement's timeout still
# bounds it): for the server's own short locks, such as the one that extends a table for new
# rows, which concurrent closes of 1,000 quotes each held past LOCK_WAIT and so sent a third
# of W2-1000's closes to the transaction. No client holds a quote's row lock without the
# opportunity's (the lock-first design), so no client's queue is waited in there. Local to
# the call: the function's own SET restores the session's value as it returns.
_WRITE_WAITS = "PERFORM set_config('lock_timeout', '0', true);"
# SQLSTATE classes of a function that no longer fits the schema or was dropped with its session's
# temporary objects: made again on its next use.
REMADE = ("42", "0A")

_PLACEHOLDER = re.compile(r"\$(\d+)")


Columns = tuple[tuple[str, int], ...]  # a statement's result columns: name and type oid


@dataclass(frozen=True, slots=True)
class LockedCall:
    """One function on one connection: how to call it and what its columns are."""

    sql: str  # SELECT * FROM pg_temp.<name>($1, ..., $n)
    columns: Columns  # the write's
    # With the locked row: the lock's, first in each row (``function_source``).
    lock_columns: Columns | None


_MADE: WeakKeyDictionary[asyncpg.Connection, dict[tuple[str, str, bool], LockedCall]] = (
    WeakKeyDictionary()
)


def function_name(lock_sql: str, write_sql: str, with_lock: bool) -> str:
    digest = hashlib.sha256(f"{lock_sql}\0{write_sql}\0{with_lock}".encode()).hexdigest()
    return f"gql_locked_{digest[:24]}"


def renumbered(sql: str, offset: int) -> str:
    """``sql`` with each ``$n`` placeholder as ``$<n + offset>``. (The statements are built
    here, their literals are enum values and numbers: no ``$`` other than a placeholder.)"""
    return _PLACEHOLDER.sub(lambda match: f"${int(match.group(1)) + offset}", sql)


def _type(type_: asyncpg.types.Type) -> str:
    return f'"{type_.schema}"."{type_.name}"'


def function_source(
    name: str,
    lock_sql: str,
    lock_arguments: Sequence[str],
    write_sql: str,
    write_arguments: Sequence[str],
    columns: Sequence[str],
    lock_columns: Sequence[str] | None = None,
) -> str:
    """``CREATE FUNCTION pg_temp.<name>`` that runs ``lock_sql`` then ``write_sql``: argument
    types in the order of the lock's placeholders then the write's, ``columns`` the write's
    result column types.

    Without ``lock_columns``, the function returns the write's rows, and a write that returns
    none fails (``NOTHING_WRITTEN``). With them (the lock's result column types), the write
    may return none: the first row is the locked one, its columns first and the others empty,
    then the write's rows, whose first columns are as many empty ones (the caller's write
    selects them: ``RETURN QUERY`` puts its rows out as they are, where a loop that returned
    each cost W2-30's server ~60 µs more than the transaction).
    """
    arguments = ", ".join([*lock_arguments, *write_arguments])
    # (Columns named c<i>: the body's statements name no such column or variable.)
    table = ", ".join(f"c{index} {type_}" for index, type_ in enumerate(columns))
    write = renumbered(write_sql, len(lock_arguments))
    head = (
        f"CREATE OR REPLACE FUNCTION pg_temp.{name}({arguments}) RETURNS TABLE ({table})\n"
        f"LANGUAGE plpgsql VOLATILE SET lock_timeout = '{LOCK_WAIT}' AS $gql$\n"
        "#variable_conflict use_column\n"
    )
    if lock_columns is None:
        return (
            f"{head}DECLARE gql_locked record;\n"
            "BEGIN\n"
            f"    {lock_sql} INTO gql_locked;\n"
            "    IF NOT FOUND THEN RETURN; END IF;\n"
            f"    {_WRITE_WAITS}\n"
            f"    RETURN QUERY {write};\n"
            "    IF NOT FOUND THEN\n"
            "        RAISE EXCEPTION 'the write after the lock wrote nothing'"
            f" USING ERRCODE = '{NOTHING_WRITTEN}';\n"
            "    END IF;\n"
            "END\n"
            "$gql$"
        )
    lock_names = ", ".join(f"c{index}" for index in range(len(lock_columns)))
    return (
        f"{head}BEGIN\n"
        f"    {lock_sql} INTO {lock_names};\n"
        "    IF NOT FOUND THEN RETURN; END IF;\n"
        f"    {_WRITE_WAITS}\n"
        "    RETURN NEXT;\n"
        f"    RETURN QUERY {write};\n"
        "END\n"
        "$gql$"
    )


def known(
    connection: asyncpg.Connection, lock_sql: str, write_sql: str, with_lock: bool
) -> LockedCall | None:
    """The function ``locked_call`` made on ``connection`` already, if any (no round trip,
    nothing allocated: a close's path)."""
    made = _MADE.get(connection)
    return None if made is None else made.get((lock_sql, write_sql, with_lock))


async def locked_call(
    connection: asyncpg.Connection, lock_sql: str, write_sql: str, with_lock: bool
) -> LockedCall:
    """The function of ``lock_sql`` then ``write_sql`` on ``connection`` (``with_lock``: one
    that returns the locked row too), made there first if it is not yet (three round trips,
    once per connection)."""
    made = _MADE.get(connection)
    if made is None:
        made = _MADE[connection] = {}
    key = (lock_sql, write_sql, with_lock)
    call = made.get(key)
    if call is None:
        lock = await connection.prepare(lock_sql)
        write = await connection.prepare(write_sql)
        lock_arguments = [_type(type_) for type_ in lock.get_parameters()]
        write_arguments = [_type(type_) for type_ in write.get_parameters()]
        attributes = write.get_attributes()
        lock_attributes = lock.get_attributes() if with_lock else None
        name = function_name(lock_sql, write_sql, with_lock)
        await connection.execute(
            function_source(
                name,
                lock_sql,
                lock_arguments,
                write_sql,
                write_arguments,
                [_type(attribute.type) for attribute in attributes],
                None
                if lock_attributes is None
                else [_type(attribute.type) for attribute in lock_attributes],
            )
        )
        count = len(lock_arguments) + len(write_arguments)
        placeholders = ", ".join(f"${index}" for index in range(1, count + 1))
        call = made[key] = LockedCall(
            sql=f"SELECT * FROM pg_temp.{name}({placeholders})",
            columns=_columns(attributes),
            lock_columns=None if lock_attributes is None else _columns(lock_attributes),
        )
    return call


def _columns(attributes: Sequence[asyncpg.types.Attribute]) -> Columns:
    return tuple((attribute.name, attribute.type.oid) for attribute in attributes)


def forget(connection: asyncpg.Connection, lock_sql: str, write_sql: str, with_lock: bool) -> None:
    """Make the function again on its next use (its call failed: a schema change, a session
    whose temporary objects were discarded)."""
    _MADE.get(connection, {}).pop((lock_sql, write_sql, with_lock), None)
