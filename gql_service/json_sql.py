"""SQL that builds JSON, per engine: the vocabulary of the compiled read path.

PostgreSQL (``json_build_object`` / ``json_agg``) and SQLite (``json_object`` /
``json_group_array``) both build nested JSON in one statement. The expressions here render the
stored values exactly as the GraphQL layer serialises them (global ids, ISO timestamps, money as
text with four decimals), so that a compiled read answers byte for byte as the plain path.
Values are always bound as parameters, never inlined.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

# SQLite has no base64: the GraphQL layer registers these on each SQLite connection.
GLOBAL_ID_FUNCTION = "gql_global_id"
OFFSET_CURSOR_FUNCTION = "gql_offset_cursor"
# SQLite's json_object takes at most 63 pairs, PostgreSQL's json_build_object 50 (100 arguments).
MAX_OBJECT_KEYS = 50


class JsonSql:
    """The JSON-building expressions of one engine; ``params`` collects the bound values."""

    name = ""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self._aliases = 0

    def alias(self) -> str:
        """A table alias not used elsewhere in the statement."""
        self._aliases += 1
        return f"t{self._aliases}"

    def bind(self, value: Any) -> str:
        """A placeholder for ``value``."""
        return self.placeholder(self.parameter(value))

    def parameter(self, value: Any) -> str:
        """The name of a new parameter holding ``value``."""
        name = f"p{len(self.params)}"
        self.params[name] = value
        return name

    def placeholder(self, name: str) -> str:  # pragma: no cover - per engine
        raise NotImplementedError

    def object(self, pairs: list[tuple[str, str]]) -> str:  # pragma: no cover - per engine
        raise NotImplementedError

    def nested(self, subquery: str) -> str:
        """A scalar subquery that yields JSON, as a value inside another JSON expression."""
        return f"({subquery})"

    def array(self, item: str, source: str, order: str, limit: str) -> str:
        """A JSON array of ``item`` over ``source`` rows (FROM ... WHERE ...), in ``order``: one
        column that is unique among them, with DESC or not."""
        raise NotImplementedError  # pragma: no cover - per engine

    def boolean(self, condition: str) -> str:  # pragma: no cover - per engine
        raise NotImplementedError

    def money(self, column: str) -> str:  # pragma: no cover - per engine
        raise NotImplementedError

    def timestamp(self, column: str) -> str:  # pragma: no cover - per engine
        raise NotImplementedError

    def global_id(self, type_name: str, column: str) -> str:  # pragma: no cover - per engine
        raise NotImplementedError

    def offset_cursor(self, column: str) -> str:  # pragma: no cover - per engine
        raise NotImplementedError

    def text(self, json_value: str) -> str:
        """The statement's top-level JSON as text (the driver would otherwise parse it)."""
        return json_value

    def value(self, value: Any) -> Any:
        """A value bound for comparison with a stored one of its type."""
        return value

    def pair_array(self, first: str, second: str) -> str:  # pragma: no cover - per engine
        raise NotImplementedError


class PostgresJson(JsonSql):
    name = "postgresql"

    def placeholder(self, name: str) -> str:
        return f"%({name})s"

    def object(self, pairs: list[tuple[str, str]]) -> str:
        return "json_build_object(" + ", ".join(f"'{k}', {v}" for k, v in pairs) + ")"

    def array(self, item: str, source: str, order: str, limit: str) -> str:
        # The aggregate orders by the subquery's own key, projected: a key is one unique
        # column (an id, a page's row number) with its direction. A row_number() window over
        # the same order cost PostgreSQL 2-3% of R1's statement (pgbench) and 9% of R2's.
        key, _, direction = order.partition(" ")
        assert direction in ("", "DESC"), order
        aggregate_order = f"_s._n {direction}" if direction else "_s._n"
        return (
            f"(SELECT coalesce(json_agg(_s._j ORDER BY {aggregate_order}), '[]'::json) FROM "
            f"(SELECT {item} AS _j, {key} AS _n {source} ORDER BY {order} LIMIT {limit}) _s)"
        )

    def boolean(self, condition: str) -> str:
        return f"({condition})"

    def money(self, column: str) -> str:
        return f"{column}::text"

    def timestamp(self, column: str) -> str:
        # Python's isoformat(): microseconds only when non-zero, and the UTC offset.
        return (
            f"replace(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), "
            "'.000000', '') || '+00:00'"
        )

    def global_id(self, type_name: str, column: str) -> str:
        return (
            f"rtrim(translate(encode(convert_to('{type_name}:' || {column}, 'UTF8'), 'base64'), "
            "'+/', '-_'), '=')"
        )

    def offset_cursor(self, column: str) -> str:
        return f"translate(encode(convert_to('id:' || {column}, 'UTF8'), 'base64'), '+/', '-_')"

    def text(self, json_value: str) -> str:
        return f"({json_value})::text"

    def pair_array(self, first: str, second: str) -> str:
        return f"json_build_array({first}, {second})"


class SqliteJson(JsonSql):
    name = "sqlite"

    def placeholder(self, name: str) -> str:
        return f":{name}"

    def object(self, pairs: list[tuple[str, str]]) -> str:
        return "json_object(" + ", ".join(f"'{k}', {v}" for k, v in pairs) + ")"

    def nested(self, subquery: str) -> str:
        # JSON that crosses a subquery comes back as text: json() marks it as JSON again.
        return f"json(({subquery}))"

    def array(self, item: str, source: str, order: str, limit: str) -> str:
        # json_group_array(... ORDER BY) needs SQLite 3.44; an ordered subquery keeps its order
        # as long as it has a LIMIT.
        return (
            f"json((SELECT json_group_array(json(_s._j)) FROM "
            f"(SELECT {item} AS _j {source} ORDER BY {order} LIMIT {limit}) _s))"
        )

    def boolean(self, condition: str) -> str:
        return f"json(CASE WHEN {condition} THEN 'true' ELSE 'false' END)"

    def money(self, column: str) -> str:
        return column  # stored as text with four decimals

    def timestamp(self, column: str) -> str:
        # Stored as "YYYY-MM-DD HH:MM:SS.ffffff" in UTC.
        return (
            f"substr({column}, 1, 10) || 'T' || substr({column}, 12, 8) || "
            f"CASE WHEN substr({column}, 20) IN ('', '.000000') THEN '' "
            f"ELSE substr({column}, 20, 7) END || '+00:00'"
        )

    def global_id(self, type_name: str, column: str) -> str:
        return f"{GLOBAL_ID_FUNCTION}('{type_name}', {column})"

    def offset_cursor(self, column: str) -> str:
        return f"{OFFSET_CURSOR_FUNCTION}({column})"

    def value(self, value: Any) -> Any:
        # Stored as text: timestamps as "YYYY-MM-DD HH:MM:SS.ffffff" (UTC), dates in ISO form.
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(value, date):
            return value.isoformat()
        return value

    def pair_array(self, first: str, second: str) -> str:
        return f"json_array({first}, {second})"


def json_sql(dialect_name: str) -> JsonSql:
    """A fresh builder for one statement on the named engine."""
    return PostgresJson() if dialect_name == "postgresql" else SqliteJson()
