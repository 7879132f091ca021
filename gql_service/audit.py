"""Audit stamps: a row's next version, and when and by whom it was written. Written only here."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

# A new row's version; every write adds one.
FIRST_VERSION = 1


class Versioned(Protocol):
    version: int
    modified_at: datetime
    modified_by: str


def created(now: Any, actor: Any) -> dict[str, Any]:
    """The stamps of a new versioned row (its version starts at the column's default, 1).

    ``now`` and ``actor`` are values, or placeholders for an ``INSERT ... SELECT``'s list.
    """
    return {"created_at": now, "created_by": actor, "modified_at": now, "modified_by": actor}


def canceled(now: datetime, actor: str) -> dict[str, Any]:
    """The stamps of a record canceled now (a close record, when its opportunity reopens)."""
    return {"canceled_at": now, "canceled_by": actor}


def inserted(now: Any, actor: Any) -> dict[str, Any]:
    """``created`` with the first version, for a Core INSERT (no model default applies)."""
    return {"version": FIRST_VERSION, **created(now, actor)}


def touched(version: Any, now: Any, actor: Any) -> dict[str, Any]:
    """The stamps of a changed row: its next version, this transaction's clock and actor.

    The same three values whether for a loaded row (``version`` an int) or for an UPDATE's SET
    clause (``version`` the column, ``now`` and ``actor`` values or placeholders), so that every
    write path stamps alike.
    """
    return {"version": version + 1, "modified_at": now, "modified_by": actor}


def stamp(row: Versioned, now: datetime, actor: str) -> None:
    """Stamp a loaded row in place, as ``touched`` describes."""
    for name, value in touched(row.version, now, actor).items():
        setattr(row, name, value)
