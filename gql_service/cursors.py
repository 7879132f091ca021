"""Cursors, issued and read in one place. No GraphQL here: refusals are InvalidCursorError.

Two kinds: a keyset cursor names a row's place in an ordering (the ordering's field, the row's
sort value and id), for the top-level connections; an offset cursor names a child by its id, for
the nested connections that page a parent's children loaded at once (an opportunity's quotes,
a quote's lines, a contract's lines). The compiled read path computes offset cursors in SQL
(json_sql.py) and keyset cursors through ``encode_keyset_cursor``, so both paths issue the same.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from gql_service.messages import TranslatableError, msg
from gql_service.models import MAX_ID, Money, UTCDateTime
from gql_service.rules import check_money, is_storable_text


class InvalidCursorError(TranslatableError, ValueError):
    """A cursor that this service did not issue, or for another ordering."""


def _not_issued() -> InvalidCursorError:
    return InvalidCursorError(msg("The cursor is not one this service issued."))


def offset_cursor(pk: int) -> str:
    """The cursor of a nested connection's child: its id."""
    return base64.urlsafe_b64encode(f"id:{pk}".encode()).decode()


def offset_position(cursor: str) -> int:
    """The id behind an ``offset_cursor``."""
    try:
        prefix, _, pk = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if prefix == "id":
            return int(pk)
    except ValueError:
        pass
    raise _not_issued()


def encode_keyset_cursor(field_name: str, value: Any, key: int) -> str:
    """The opaque cursor of a row: its sort value as JSON (dates as ISO text, money as its
    four-decimal text) and its id.

    A pure function of the value, so a path that reads the value as text (a date or timestamp
    in ISO form, money as text) issues the same cursors as one that reads Python objects.
    """
    if isinstance(value, date):  # datetime is a date too
        value = value.isoformat()
    elif isinstance(value, Decimal):
        value = str(value)
    raw = json.dumps([field_name, value, key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_keyset_cursor(cursor: str, field_name: str, column: Any) -> tuple[Any, int]:
    """The (sort value, id) behind a cursor, checked so that no forged cursor reaches SQL.

    The value is None only for a nullable column (a row without a value).
    """
    try:
        name, value, key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidCursorError(msg("The cursor is not one this service issued.")) from exc
    if name != field_name or not isinstance(key, int) or isinstance(key, bool):
        raise InvalidCursorError(msg("The cursor belongs to another ordering."))
    if not 0 <= key <= MAX_ID:
        raise InvalidCursorError(msg("The cursor is not one this service issued."))
    if value is None and column.nullable:
        return None, key
    if not isinstance(value, str) or not is_storable_text(value):
        raise InvalidCursorError(msg("The cursor is not one this service issued."))
    # The column's type expects a datetime or date, not the cursor's ISO text.
    try:
        if isinstance(column.type, (UTCDateTime, sa.DateTime)):
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise ValueError("a cursor's timestamp carries its offset")
            return moment.astimezone(UTC), key
        if isinstance(column.type, sa.Date):
            return date.fromisoformat(value), key
        if isinstance(column.type, Money):
            amount = Decimal(value)
            if check_money("cursor", amount):
                raise ValueError("a cursor's amount is a storable one")
            return amount, key
    except (ValueError, OverflowError, InvalidOperation) as exc:
        raise InvalidCursorError(msg("The cursor is not one this service issued.")) from exc
    return value, key
