"""Work psycopg does on every statement that the service never uses, left out.

Both were measured in-process under uvloop, on PostgreSQL, in CPU per request (bench/ for the
data set; three or four alternating runs of 1,500-2,000 requests each):

- ``cursor.description``. psycopg builds a ``Column`` object for every column of every result
  (decoding its name, looking its type up in the adapters' registry, reading its size and
  modifier), and SQLAlchemy reads the description of every result it fetches, for each column's
  name and type code only. A close returns some fifty columns in its two results.
  ``LeanCursor`` describes them as the plain 7-item sequences PEP 249 specifies (name,
  type_code, then five items psycopg fills lazily and SQLAlchemy never reads): a
  closeOpportunity took ~2,080 against ~1,950 µs.
- The parsing of a statement's text (its ``%(name)s`` placeholders made ``$n``). psycopg caches
  it for texts of at most 4,096 characters; the one-statement close of an opportunity with its
  open quotes (repositories._close_all_statement) is about 6,000, so it was parsed again on
  every call. The limit is raised for the few long statements the service builds, which are
  cached per statement shape (repositories.py): a closeOpportunity with ``closeOpenQuotes``
  took ~2,375 against ~2,240 µs.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import _queries

# The longest statement text whose parsing psycopg keeps (its own default: 4,096).
STATEMENT_TEXT_CACHED = 16_384
_queries.MAX_CACHED_STATEMENT_LENGTH = max(
    _queries.MAX_CACHED_STATEMENT_LENGTH, STATEMENT_TEXT_CACHED
)


class LeanCursor(psycopg.AsyncCursor[Any]):
    """psycopg's cursor, describing a result's columns as plain tuples."""

    @property
    def description(self) -> list[tuple[Any, ...]] | None:  # type: ignore[override]
        result = self.pgresult
        if result is None or not result.nfields:
            # No result, or one without columns: psycopg's own answer (None, or [] for a
            # statement that returns rows of no column).
            return super().description  # type: ignore[return-value]
        encoding = self.connection.info.encoding
        # (A COPY result's columns have no name: psycopg numbers them.)
        return [
            (
                name.decode(encoding) if (name := result.fname(index)) else f"column_{index + 1}",
                result.ftype(index),
                None,  # display_size, internal_size, precision, scale, null_ok: never read
                None,
                None,
                None,
                None,
            )
            for index in range(result.nfields)
        ]
