"""Compile a read's selection into SQL that returns the response's JSON.

After parsing, validation and the cost check, a query whose every root field is covered here
becomes ONE statement: a SELECT with one column per root field, each a scalar subquery that
builds that field's JSON (``json_sql``). The database's JSON goes into the response as it is;
no resolver, DataLoader, ORM object or GraphQL type runs. Whatever is not covered (mutations,
introspection, arguments the plain path answers with an error, @defer) raises
``Unsupported`` and is left to the normal execution, so both paths answer alike; a
differential test holds them to the same bytes.

Field collection (fragments, @skip/@include) and argument coercion are graphql-core's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson
from cachetools import LRUCache
from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
)
from graphql.execution.collect_fields import (
    FieldDetailsList,
    GroupedFieldSet,
    collect_fields,
    collect_subfields,
)
from graphql.execution.executor import Executor
from graphql.execution.values import get_argument_values

from gql_service import models
from gql_service.cursors import InvalidCursorError, decode_keyset_cursor, encode_keyset_cursor
from gql_service.graphql.ids import id_variables, parse_id
from gql_service.graphql.inputs import ContractFilter, OpportunityFilter, QuoteListFilter
from gql_service.graphql.pagination import after_id, page_request
from gql_service.graphql.query import contract_query, opportunity_query, quote_list_query
from gql_service.json_sql import MAX_OBJECT_KEYS, JsonSql, json_sql
from gql_service.queries import CONTRACT_ORDERING, QUOTE_ORDERING, Ordering
from gql_service.settings import Settings
from gql_service.sort_keys import money_key_value, sqlite_money_key

OPEN_STATES = "('DRAFT', 'ACTIVE')"


class Unsupported(Exception):
    """The compiler leaves this operation to the plain execution path."""


# A column of the statement -> the root field's value in the response.
Assemble = Callable[[list[Any]], Any]


@dataclass
class CompiledRead:
    """One statement for a whole query, and how its columns become the response's data."""

    sql: str
    params: dict[str, Any]
    # Per response key: the statement columns it takes, and how they become its value.
    fields: list[tuple[str, int, Assemble]] = field(default_factory=list)
    # Parameter -> the ID variable whose primary key it binds (see ``Compilers``' cache).
    linked: dict[str, str] = field(default_factory=dict)

    def rebound(self, keys: dict[str, int]) -> CompiledRead:
        """The same statement for other primary keys of its ID variables (``keys``: each
        variable's, of the same types)."""
        if not self.linked:
            return self
        params = dict(self.params)
        for param, variable in self.linked.items():
            params[param] = keys[variable]
        return CompiledRead(self.sql, params, self.fields, self.linked)

    def data(self, row: Sequence[str | None]) -> dict[str, Any]:
        values = [None if text is None else orjson.loads(text) for text in row]
        out: dict[str, Any] = {}
        position = 0
        for key, width, assemble in self.fields:
            out[key] = assemble(values[position : position + width])
            position += width
        return out


# GraphQL object type -> (table, {field: (kind, column)}). Kinds render stored values as the
# plain path serialises them; relations are methods of the compiler.
TABLES = {
    "Opportunity": "opportunity",
    "Quote": "quote",
    "OpportunityClose": "opportunity_close",
    "QuoteClose": "quote_close",
    "Competitor": "competitor",
    "ProjectContract": "project_contract",
    "ContractLine": "contract_line",
    "QuoteLine": "quote_line",
    "OpportunityLine": "opportunity_line",
}
_AUDIT = {
    "createdAt": ("timestamp", "created_at"),
    "createdBy": ("column", "created_by"),
}
_MODIFIED = {
    "modifiedAt": ("timestamp", "modified_at"),
    "modifiedBy": ("column", "modified_by"),
}
_LINE = {
    "name": ("column", "name"),
    "billingMethod": ("column", "billing_method"),
    "transactionClass": ("column", "transaction_class"),
    "quantity": ("money", "quantity"),
    "unitPrice": ("money", "unit_price"),
    "discount": ("money", "discount"),
    "amount": ("money", "amount"),
    "version": ("column", "version"),
    **_AUDIT,
    **_MODIFIED,
}
# A parent's lines: (parent type, field) -> (column naming the parent, line type).
LINES = {
    ("Quote", "lines"): ("quote_id", "QuoteLine"),
    ("Opportunity", "lines"): ("opportunity_id", "OpportunityLine"),
    ("ProjectContract", "lines"): ("contract_id", "ContractLine"),
}
COLUMNS: dict[str, dict[str, tuple[str, str]]] = {
    "Opportunity": {
        "name": ("column", "name"),
        "customerName": ("column", "customer_name"),
        "currencyCode": ("column", "currency_code"),
        "estimatedRevenue": ("money", "estimated_revenue"),
        "estimatedCloseDate": ("column", "estimated_close_date"),
        "state": ("column", "state"),
        "statusReason": ("column", "status_reason"),
        "forecastCategory": ("column", "forecast_category"),
        "actualRevenue": ("money", "actual_revenue"),
        "actualCloseDate": ("column", "actual_close_date"),
        "description": ("column", "description"),
        "isRevenueSystemCalculated": ("condition", "{t}.is_revenue_system_calculated"),
        "isClosed": ("condition", "{t}.state <> 'OPEN'"),
        "version": ("column", "version"),
        **_AUDIT,
        **_MODIFIED,
    },
    "Quote": {
        "quoteNumber": ("column", "quote_number"),
        "revisionNumber": ("column", "revision_number"),
        "name": ("column", "name"),
        "currencyCode": ("column", "currency_code"),
        "totalAmount": ("money", "total_amount"),
        "state": ("column", "state"),
        "statusReason": ("column", "status_reason"),
        "isOpen": ("condition", "{t}.state IN " + OPEN_STATES),
        "effectiveFrom": ("column", "effective_from"),
        "effectiveTo": ("column", "effective_to"),
        "closedOn": ("column", "closed_on"),
        "version": ("column", "version"),
        **_AUDIT,
        **_MODIFIED,
    },
    "OpportunityClose": {
        "outcome": ("column", "outcome"),
        "statusReason": ("column", "status_reason"),
        "actualRevenue": ("money", "actual_revenue"),
        "closeDate": ("column", "close_date"),
        "description": ("column", "description"),
        "state": ("column", "state"),
        **_AUDIT,
        "canceledAt": ("timestamp", "canceled_at"),
        "canceledBy": ("column", "canceled_by"),
    },
    "QuoteClose": {
        "quoteNumber": ("column", "quote_number"),
        "revisionNumber": ("column", "revision_number"),
        "statusReason": ("column", "status_reason"),
        "closeDate": ("column", "close_date"),
        "description": ("column", "description"),
        "batchId": ("column", "batch_id"),
        **_AUDIT,
    },
    "Competitor": {
        "name": ("column", "name"),
        "website": ("column", "website"),
        "notes": ("column", "notes"),
        **_AUDIT,
    },
    "ProjectContract": {
        "contractNumber": ("column", "contract_number"),
        "name": ("column", "name"),
        "state": ("column", "state"),
        "customerName": ("column", "customer_name"),
        "currencyCode": ("column", "currency_code"),
        "totalAmount": ("money", "total_amount"),
        "version": ("column", "version"),
        **_AUDIT,
        **_MODIFIED,
    },
    "ContractLine": _LINE,
    "QuoteLine": _LINE,
    "OpportunityLine": _LINE,
}
# Keyset-paginated root lists: the model whose column the cursor's value is checked against.
PAGED_MODELS: dict[str, Any] = {
    "opportunity": models.Opportunity,
    "competitor": models.Competitor,
    "quote": models.Quote,
    "project_contract": models.ProjectContract,
}
# Opportunity orderings the compiler answers (all of OpportunityOrderField's).
OPPORTUNITY_ORDERINGS = (
    "created_at",
    "modified_at",
    "name",
    "estimated_close_date",
    "estimated_revenue",
    "actual_close_date",
)


def _one(value: list[Any]) -> Any:
    return value[0]


def _constant(value: Any) -> Assemble:
    return lambda _: value


class Compiler:
    """Compiles one operation; a new one per request (it collects the statement's values)."""

    def __init__(
        self,
        schema: GraphQLSchema,
        executor: Executor[Any],
        settings: Settings,
        dialect: str,
        id_variables: dict[int, str] | None = None,
    ) -> None:
        self.schema = schema
        self.executor = executor
        self.settings = settings
        self.sql: JsonSql = json_sql(dialect)
        # id() of an ID variable's value -> its name: the primary keys parsed from it are bound
        # as parameters linked to the variable, so that the statement serves its other values.
        self.id_variables = id_variables or {}
        self.linked: dict[str, str] = {}

    # --- the operation -------------------------------------------------------------------

    def compile(self) -> CompiledRead:
        operation = self.executor.operation
        if operation.operation is not OperationType.QUERY:
            raise Unsupported("not a query")
        query_type = self.schema.query_type
        assert query_type is not None
        collected = collect_fields(
            self.schema,
            self.executor.fragments,
            self.executor.variable_values,
            query_type,
            operation,
        )
        if collected.new_defer_usages:
            raise Unsupported("@defer")
        columns: list[str] = []
        read = CompiledRead(sql="", params=self.sql.params, linked=self.linked)
        for key, details in collected.grouped_field_set.items():
            exprs, assemble = self._root_field(query_type, details)
            read.fields.append((key, len(exprs), assemble))
            columns += exprs
        if columns:
            read.sql = "SELECT " + ", ".join(self.sql.text(c) for c in columns)
        return read

    def _root_field(
        self, query_type: GraphQLObjectType, details: FieldDetailsList
    ) -> tuple[list[str], Assemble]:
        name = details[0].node.name.value
        if name == "__typename":
            return [], _constant(query_type.name)
        if name.startswith("__"):
            # __schema and __type: introspection is the plain path's.
            raise Unsupported(name)
        args = self._arguments(query_type, details)
        if name in ("opportunity", "quote", "contract", "node"):
            wanted = {
                "opportunity": "Opportunity",
                "quote": "Quote",
                "contract": "ProjectContract",
            }.get(name)
            expr = self._node(args["id"], wanted, details)
            return ([], _constant(None)) if expr is None else ([expr], _one)
        if name == "nodes":
            ids = args["ids"]
            if len(ids) > self.settings.max_page_size:
                raise Unsupported("too many ids: the plain path refuses them")
            found = [self._node(global_id, None, details) for global_id in ids]
            exprs = [expr for expr in found if expr is not None]
            slots = [expr is not None for expr in found]

            def assemble(values: list[Any]) -> list[Any]:
                it = iter(values)
                return [next(it) if slot else None for slot in slots]

            return exprs, assemble
        if name == "opportunities":
            return self._root_connection("opportunity", "Opportunity", args, details)
        if name == "competitors":
            return self._root_connection("competitor", "Competitor", args, details)
        if name == "quotes":
            return self._root_connection("quote", "Quote", args, details)
        if name == "contracts":
            return self._root_connection("project_contract", "ProjectContract", args, details)
        raise Unsupported(f"root field {name}")

    def _arguments(self, parent: GraphQLObjectType, details: FieldDetailsList) -> dict[str, Any]:
        detail = details[0]
        if any(d.defer_usage is not None for d in details) or any(
            directive.name.value == "stream"
            for d in details
            for directive in d.node.directives or ()
        ):
            raise Unsupported("@defer/@stream")
        return get_argument_values(
            parent.fields[detail.node.name.value],
            detail.node,
            self.executor.variable_values,
            detail.fragment_variable_values,
        )

    def _subfields(
        self, object_type: GraphQLObjectType, details: FieldDetailsList
    ) -> GroupedFieldSet:
        collected = collect_subfields(
            self.schema,
            self.executor.fragments,
            self.executor.variable_values,
            self.executor.operation,
            object_type,
            details,
        )
        if collected.new_defer_usages:
            raise Unsupported("@defer")
        return collected.grouped_field_set

    def _type(self, name: str) -> GraphQLObjectType:
        found = self.schema.get_type(name)
        assert isinstance(found, GraphQLObjectType)
        return found

    # --- objects ---------------------------------------------------------------------------

    def _node(self, global_id: str, wanted: str | None, details: FieldDetailsList) -> str | None:
        """One object by global id as a scalar subquery; None when the id names nothing."""
        parsed = parse_id(global_id)
        if parsed is None or parsed[0] not in TABLES or (wanted and parsed[0] != wanted):
            return None
        type_name, pk = parsed
        t = self.sql.alias()
        fields = self._subfields(self._type(type_name), details)
        obj = self._object(type_name, t, fields)
        key = self.sql.parameter(pk)
        variable = self.id_variables.get(id(global_id))
        if variable is not None:
            self.linked[key] = variable
        placeholder = self.sql.placeholder(key)
        return f"(SELECT {obj} FROM {TABLES[type_name]} {t} WHERE {t}.id = {placeholder})"

    def _object(self, type_name: str, t: str, fields: GroupedFieldSet) -> str:
        """The JSON object of the row aliased ``t``, with the selected fields in order."""
        if len(fields) > MAX_OBJECT_KEYS:
            raise Unsupported("too many keys for one JSON object")
        object_type = self._type(type_name)
        columns = COLUMNS[type_name]
        pairs = []
        for key, details in fields.items():
            name = details[0].node.name.value
            spec = columns.get(name)
            if name == "__typename":
                expr = f"'{type_name}'"
            elif name == "id":
                expr = self.sql.global_id(type_name, f"{t}.id")
            elif spec is not None:
                expr = self._scalar(spec, t)
            else:
                expr = self._relation(object_type, type_name, name, t, details)
            pairs.append((key, expr))
        return self.sql.object(pairs)

    def _scalar(self, spec: tuple[str, str], t: str) -> str:
        kind, column = spec
        if kind == "condition":
            return self.sql.boolean(column.format(t=t))
        if kind == "money":
            return self.sql.money(f"{t}.{column}")
        if kind == "timestamp":
            return self.sql.timestamp(f"{t}.{column}")
        return f"{t}.{column}"

    def _relation(
        self,
        object_type: GraphQLObjectType,
        type_name: str,
        name: str,
        t: str,
        details: FieldDetailsList,
    ) -> str:
        sql = self.sql
        relation = (type_name, name)
        if relation in (
            ("Quote", "opportunity"),
            ("OpportunityClose", "opportunity"),
            ("OpportunityLine", "opportunity"),
        ):
            return self._related("Opportunity", f"{{a}}.id = {t}.opportunity_id", details)
        if relation == ("OpportunityClose", "competitor"):
            return self._related("Competitor", f"{{a}}.id = {t}.competitor_id", details)
        if relation == ("QuoteLine", "quote"):
            return self._related("Quote", f"{{a}}.id = {t}.quote_id", details)
        if relation == ("Quote", "closeRecord"):
            return self._related("QuoteClose", f"{{a}}.quote_id = {t}.id", details)
        if relation == ("Opportunity", "openQuoteCount"):
            a = sql.alias()
            return (
                f"(SELECT count(*) FROM quote {a} WHERE {a}.opportunity_id = {t}.id "
                f"AND {a}.state IN {OPEN_STATES})"
            )
        if relation == ("Opportunity", "closeHistory"):
            a = sql.alias()
            item = self._object(
                "OpportunityClose", a, self._subfields(self._type("OpportunityClose"), details)
            )
            return sql.array(
                item,
                f"FROM opportunity_close {a} WHERE {a}.opportunity_id = {t}.id",
                f"{a}.id DESC",
                str(models.MAX_ID),
            )
        if relation == ("Opportunity", "quotes"):
            return self._quotes(t, self._arguments(object_type, details), details)
        if relation == ("ProjectContract", "opportunity"):
            return self._related("Opportunity", f"{{a}}.id = {t}.opportunity_id", details)
        if relation == ("ProjectContract", "quote"):
            return self._related("Quote", f"{{a}}.id = {t}.quote_id", details)
        if relation == ("Quote", "contract"):
            return self._related("ProjectContract", f"{{a}}.quote_id = {t}.id", details)
        if relation == ("Opportunity", "contracts"):
            args = self._arguments(object_type, details)
            condition = f"{{a}}.opportunity_id = {t}.id"
            return self._nested("ProjectContract", condition, [], args, details)
        if relation in LINES:
            parent, node_type = LINES[relation]
            args = self._arguments(object_type, details)
            return self._nested(node_type, f"{{a}}.{parent} = {t}.id", [], args, details)
        raise Unsupported(f"{type_name}.{name}")

    def _related(self, type_name: str, condition: str, details: FieldDetailsList) -> str:
        a = self.sql.alias()
        obj = self._object(type_name, a, self._subfields(self._type(type_name), details))
        return self.sql.nested(
            f"SELECT {obj} FROM {TABLES[type_name]} {a} WHERE {condition.format(a=a)}"
        )

    # --- connections ---------------------------------------------------------------------

    def _quotes(self, t: str, args: dict[str, Any], details: FieldDetailsList) -> str:
        """Opportunity.quotes: oldest first, offset cursors (the quote's id)."""
        sql = self.sql
        conditions = []
        given = args["filter"] or {}
        states = given.get("state") or ()
        if states:
            conditions.append("{a}.state IN (" + ", ".join(sql.bind(s.name) for s in states) + ")")
        if given.get("isOpen") is not None:
            negation = "" if given["isOpen"] else "NOT "
            conditions.append(f"{{a}}.state {negation}IN {OPEN_STATES}")
        return self._nested("Quote", f"{{a}}.opportunity_id = {t}.id", conditions, args, details)

    def _nested(
        self,
        node_type: str,
        parent: str,
        conditions: list[str],
        args: dict[str, Any],
        details: FieldDetailsList,
    ) -> str:
        """A parent's children as a connection (pagination.nested_page): by id, offset cursors.

        ``parent`` and ``conditions`` are SQL conditions on the child aliased ``{a}``.
        """
        sql = self.sql
        table = TABLES[node_type]
        try:
            limit = page_request(self.settings, first=args["first"], after=args["after"]).first
            start = after_id(args["after"])
        except GraphQLError as exc:
            raise Unsupported("the plain path answers this with an error") from exc
        assert limit is not None
        everything = " AND ".join([parent, *conditions])
        remaining = everything + ("" if start is None else f" AND {{a}}.id > {sql.bind(start)}")
        limit_sql = sql.bind(limit)

        def page(item: Callable[[str], str]) -> str:
            a = sql.alias()
            return sql.array(
                item(a), f"FROM {table} {a} WHERE {remaining.format(a=a)}", f"{a}.id", limit_sql
            )

        def shown_id(aggregate: str) -> str:
            a, s = sql.alias(), sql.alias()
            return (
                f"(SELECT {sql.offset_cursor(f'{aggregate}({s}.id)')} FROM (SELECT {a}.id "
                f"FROM {table} {a} WHERE {remaining.format(a=a)} ORDER BY {a}.id "
                f"LIMIT {limit_sql}) {s})"
            )

        def has_next() -> str:
            a, s = sql.alias(), sql.alias()
            return sql.boolean(
                f"(SELECT count(*) FROM (SELECT {a}.id FROM {table} {a} WHERE "
                f"{remaining.format(a=a)} LIMIT {sql.bind(limit + 1)}) {s}) > {limit_sql}"
            )

        def has_previous() -> str:
            if start is None:
                return sql.boolean("1 = 0")
            a = sql.alias()
            return sql.boolean(
                f"EXISTS (SELECT 1 FROM {table} {a} WHERE {everything.format(a=a)} "
                f"AND {a}.id <= {sql.bind(start)})"
            )

        def total() -> str:
            a = sql.alias()
            return f"(SELECT count(*) FROM {table} {a} WHERE {everything.format(a=a)})"

        return self._connection(
            node_type,
            details,
            page=page,
            cursor=lambda a: sql.offset_cursor(f"{a}.id"),
            page_info={
                "hasNextPage": has_next,
                "hasPreviousPage": has_previous,
                "startCursor": lambda: shown_id("min"),
                "endCursor": lambda: shown_id("max"),
            },
            total=total,
        )

    def _connection(
        self,
        node_type: str,
        details: FieldDetailsList,
        *,
        page: Callable[[Callable[[str], str]], str],
        cursor: Callable[[str], str],
        page_info: dict[str, Callable[[], str]],
        total: Callable[[], str],
    ) -> str:
        """A Relay connection's JSON: ``page(item)`` renders the page's items as an array."""
        sql = self.sql
        connection_type = self._type(f"{node_type}Connection")
        node_object = self._type(node_type)
        pairs = []
        for key, sub in self._subfields(connection_type, details).items():
            name = sub[0].node.name.value
            if name == "__typename":
                expr = f"'{connection_type.name}'"
            elif name == "totalCount":
                expr = total()
            elif name == "nodes":
                fields = self._subfields(node_object, sub)
                expr = page(lambda a, fields=fields: self._object(node_type, a, fields))  # type: ignore[misc]
            elif name == "edges":
                expr = page(lambda a, sub=sub: self._edge(node_type, a, sub, cursor))  # type: ignore[misc]
            else:  # pageInfo
                info = []
                for info_key, info_sub in self._subfields(self._type("PageInfo"), sub).items():
                    info_name = info_sub[0].node.name.value
                    info.append(
                        (
                            info_key,
                            "'PageInfo'" if info_name == "__typename" else page_info[info_name](),
                        )
                    )
                expr = sql.object(info)
            pairs.append((key, expr))
        return sql.object(pairs)

    def _edge(
        self, node_type: str, a: str, details: FieldDetailsList, cursor: Callable[[str], str]
    ) -> str:
        pairs = []
        for key, sub in self._subfields(self._type(f"{node_type}Edge"), details).items():
            name = sub[0].node.name.value
            if name == "__typename":
                pairs.append((key, f"'{node_type}Edge'"))
            elif name == "cursor":
                pairs.append((key, cursor(a)))
            else:  # node
                pairs.append(
                    (key, self._object(node_type, a, self._subfields(self._type(node_type), sub)))
                )
        return self.sql.object(pairs)

    def _root_connection(
        self, table: str, node_type: str, args: dict[str, Any], details: FieldDetailsList
    ) -> tuple[list[str], Assemble]:
        """opportunities / competitors: keyset pages on (ordering field, id)."""
        sql = self.sql
        try:
            request = page_request(
                self.settings,
                first=args["first"],
                after=args["after"],
                last=args.get("last"),
                before=args.get("before"),
            )
        except GraphQLError as exc:
            raise Unsupported("the plain path answers this with an error") from exc
        conditions: list[str] = []
        if table == "opportunity":
            ordering = self._opportunity_ordering(args.get("orderBy"))
            conditions = self._opportunity_conditions(args.get("filter"))
        elif table == "quote":
            ordering = QUOTE_ORDERING
            conditions = self._quote_conditions(args.get("filter"))
        elif table == "project_contract":
            ordering = CONTRACT_ORDERING
            conditions = self._contract_conditions(args.get("filter"))
        else:
            ordering = Ordering(field="name", descending=False)
        model = PAGED_MODELS[table]
        stored = getattr(model, ordering.field)
        is_money = isinstance(stored.type, models.Money)
        column = f"{{a}}.{ordering.field}"
        if is_money and sql.name == "sqlite":
            column = sqlite_money_key(column)  # as sort_keys.money_key
        nullable = bool(stored.nullable)
        backwards = request.last is not None and request.first is None
        limit = request.last if backwards else request.first
        assert limit is not None
        keyset = list(conditions)
        for given, after in ((request.after, True), (request.before, False)):
            if given is None:
                continue
            try:
                value, key = decode_keyset_cursor(given, ordering.field, stored)
            except InvalidCursorError as exc:
                raise Unsupported("the plain path answers this with BAD_CURSOR") from exc
            if is_money and value is not None:
                value = money_key_value(value, sql.name)
            keyset.append(
                self._keyset(column, value, key, nullable, ordering.descending, after=after)
            )
        # As queries.keyset_order: (column, id) in the ordering's direction, nulls last;
        # reversed for a backward page (read in reverse, then flipped).
        direction = "DESC" if ordering.descending != backwards else "ASC"
        nulls = (" NULLS FIRST" if backwards else " NULLS LAST") if nullable else ""
        fetch_order = f"{column} {direction}{nulls}, {{a}}.id {direction}"
        where = " AND ".join(keyset) or "1 = 1"
        limit_sql = sql.bind(limit)
        shown_order = "_p._rn DESC" if backwards else "_p._rn"
        a = sql.alias()
        cte = (
            f"WITH _page AS (SELECT {a}.*, row_number() OVER (ORDER BY "
            f"{fetch_order.format(a=a)}) AS _rn FROM (SELECT * FROM {table} {a} WHERE "
            f"{where.format(a=a)} ORDER BY {fetch_order.format(a=a)} "
            f"LIMIT {sql.bind(limit + 1)}) {a}) "
        )
        has_more = sql.boolean(f"(SELECT count(*) FROM _page) > {limit_sql}")
        if ordering.field in ("created_at", "modified_at"):
            sort_text = sql.timestamp("{a}." + ordering.field)
        elif is_money:
            sort_text = sql.money("{a}." + ordering.field)
        else:
            sort_text = "{a}." + ordering.field

        def cursor(p: str) -> str:
            # The cursor's (value, id); Python encodes it after the statement (post-process).
            return sql.pair_array(sort_text.format(a=p), f"{p}.id")

        def end(order: str) -> str:
            return sql.nested(
                f"SELECT {cursor('_p')} FROM _page _p WHERE _p._rn <= {limit_sql} "
                f"ORDER BY {order} LIMIT 1"
            )

        def total() -> str:
            b = sql.alias()
            where_all = " AND ".join(conditions) or "1 = 1"
            return f"(SELECT count(*) FROM {table} {b} WHERE {where_all.format(a=b)})"

        literal = {True: sql.boolean("1 = 1"), False: sql.boolean("1 = 0")}
        connection = self._connection(
            node_type,
            details,
            page=lambda item: sql.array(
                item("_p"), f"FROM _page _p WHERE _p._rn <= {limit_sql}", shown_order, limit_sql
            ),
            cursor=cursor,
            page_info={
                "hasNextPage": lambda: (
                    has_more if not backwards else literal[request.before is not None]
                ),
                "hasPreviousPage": lambda: (
                    has_more if backwards else literal[request.after is not None]
                ),
                "startCursor": lambda: end(shown_order),
                "endCursor": lambda: end("_p._rn" if backwards else "_p._rn DESC"),
            },
            total=total,
        )
        paths = self._cursor_paths(node_type, details)
        field_name = ordering.field

        def assemble(values: list[Any]) -> Any:
            return _encode_cursors(values[0], paths, field_name)

        return [f"({cte}SELECT {connection})"], assemble

    def _keyset(
        self, column: str, value: Any, key: int, nullable: bool, descending: bool, *, after: bool
    ) -> str:
        """As queries.keyset_condition: the rows after (or before) the cursor, nulls last."""
        sql = self.sql
        op = ">" if after != descending else "<"
        k = sql.bind(key)
        if value is None:
            later_nulls = f"({column} IS NULL AND {{a}}.id {op} {k})"
            return later_nulls if after else f"({column} IS NOT NULL OR {later_nulls})"
        v = sql.bind(sql.value(value))
        dated = f"({column} {op} {v} OR ({column} = {v} AND {{a}}.id {op} {k}))"
        return f"({dated} OR {column} IS NULL)" if after and nullable else dated

    def _cursor_paths(
        self, node_type: str, details: FieldDetailsList
    ) -> list[tuple[str, str, bool]]:
        """Where a root connection's cursors sit: (edges or pageInfo key, cursor key, is_list)."""
        paths = []
        connection_type = self._type(f"{node_type}Connection")
        for key, sub in self._subfields(connection_type, details).items():
            name = sub[0].node.name.value
            if name == "edges":
                for edge_key, edge_sub in self._subfields(
                    self._type(f"{node_type}Edge"), sub
                ).items():
                    if edge_sub[0].node.name.value == "cursor":
                        paths.append((key, edge_key, True))
            elif name == "pageInfo":
                for info_key, info_sub in self._subfields(self._type("PageInfo"), sub).items():
                    if info_sub[0].node.name.value in ("startCursor", "endCursor"):
                        paths.append((key, info_key, False))
        return paths

    def _opportunity_ordering(self, given: dict[str, Any] | None) -> Ordering:
        order = given or {}
        field_value = order.get("field")
        direction = order.get("direction")
        name = field_value.value if field_value is not None else "created_at"
        if name not in OPPORTUNITY_ORDERINGS:
            raise Unsupported(f"order by {name}")
        return Ordering(field=name, descending=direction is None or direction.value == "DESC")

    def _opportunity_conditions(self, given: dict[str, Any] | None) -> list[str]:
        sql = self.sql
        if given is None:
            return []
        try:
            query = opportunity_query(
                OpportunityFilter(
                    state=given.get("state"),
                    customer_name=given.get("customerName"),
                    name_contains=given.get("nameContains"),
                    has_open_quotes=given.get("hasOpenQuotes"),
                    customer=given.get("customer"),
                    outcome=given.get("outcome"),
                    actual_close_date_from=given.get("actualCloseDateFrom"),
                    actual_close_date_to=given.get("actualCloseDateTo"),
                )
            )
        except GraphQLError as exc:
            raise Unsupported("the plain path answers this with an error") from exc
        conditions = []
        if query.states:
            conditions.append(
                "{a}.state IN (" + ", ".join(sql.bind(s.name) for s in query.states) + ")"
            )
        for column, text in (("customer_name", query.customer_name), ("name", query.name_contains)):
            if text:
                pattern = (
                    "%"
                    + text.lower().replace("/", "//").replace("%", "/%").replace("_", "/_")
                    + "%"
                )
                conditions.append(f"lower({{a}}.{column}) LIKE {sql.bind(pattern)} ESCAPE '/'")
        if query.has_open_quotes is not None:
            negation = "" if query.has_open_quotes else "NOT "
            q = sql.alias()
            conditions.append(
                f"{negation}EXISTS (SELECT 1 FROM quote {q} WHERE {q}.opportunity_id = {{a}}.id "
                f"AND {q}.state IN {OPEN_STATES})"
            )
        if query.customer is not None:
            conditions.append(f"{{a}}.customer_name = {sql.bind(query.customer)}")
        if query.outcome is not None:
            conditions.append(f"{{a}}.state = {sql.bind(query.outcome.name)}")
        for operator, day in (
            (">=", query.actual_close_from),
            ("<=", query.actual_close_to),
        ):
            if day is not None:
                conditions.append(f"{{a}}.actual_close_date {operator} {sql.bind(sql.value(day))}")
        return conditions

    def _quote_conditions(self, given: dict[str, Any] | None) -> list[str]:
        """The top-level quotes filter, as queries.Reader.quotes."""
        query = quote_list_query(
            None
            if given is None
            else QuoteListFilter(
                state=given.get("state"),
                is_open=given.get("isOpen"),
                opportunity_id=given.get("opportunityId"),
            )
        )
        conditions = self._of_opportunity_in_states(given, query.opportunity_id, query.states)
        if query.is_open is not None:
            negation = "" if query.is_open else "NOT "
            conditions.append(f"{{a}}.state {negation}IN {OPEN_STATES}")
        return conditions

    def _contract_conditions(self, given: dict[str, Any] | None) -> list[str]:
        """The contracts filter, as queries.Reader.contracts."""
        query = contract_query(
            None
            if given is None
            else ContractFilter(state=given.get("state"), opportunity_id=given.get("opportunityId"))
        )
        return self._of_opportunity_in_states(given, query.opportunity_id, query.states)

    def _of_opportunity_in_states(
        self, given: dict[str, Any] | None, opportunity_id: int | None, states: Sequence[Enum]
    ) -> list[str]:
        """The filters quotes and contracts share: one opportunity's, in one of the states."""
        sql = self.sql
        conditions = []
        if opportunity_id is not None:
            key = sql.parameter(opportunity_id)
            # An opportunity's id from an ID variable: the cached statement serves other ids
            # (``CompiledRead.rebound``); an id that names no opportunity binds 0 for every one.
            variable = self.id_variables.get(id(given and given.get("opportunityId")))
            if variable is not None and opportunity_id:
                self.linked[key] = variable
            conditions.append(f"{{a}}.opportunity_id = {sql.placeholder(key)}")
        if states:
            conditions.append("{a}.state IN (" + ", ".join(sql.bind(s.name) for s in states) + ")")
        return conditions


def _encode_cursors(connection: Any, paths: list[tuple[str, str, bool]], field_name: str) -> Any:
    """Replace the statement's [value, id] pairs with the cursors the plain path issues."""
    if connection is None:
        return None
    for outer, key, is_list in paths:
        holders = connection[outer] if is_list else [connection[outer]]
        for holder in holders:
            pair = holder[key]
            if pair is not None:
                holder[key] = encode_keyset_cursor(field_name, pair[0], pair[1])
    return connection


class Compilers:
    """Compiles reads, remembering the statement per document and shape of its variables.

    The key holds every variable's value, except that an ID variable holding a global id of
    a known type counts by that type alone: R1 with another opportunity's id reuses the
    statement with that id's primary key bound instead (``CompiledRead.rebound``).
    """

    def __init__(self, settings: Settings, size: int = 512) -> None:
        self.settings = settings
        self._cache: LRUCache[tuple[Any, ...], tuple[DocumentNode, CompiledRead | None]] = LRUCache(
            maxsize=size
        )
        # Per document and operation: the names of its variables of type ID.
        self._id_names: LRUCache[tuple[int, str | None], tuple[DocumentNode, list[str]]] = LRUCache(
            maxsize=size
        )

    def compile(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        *,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        dialect: str,
    ) -> CompiledRead | None:
        """The operation as one statement, or None when the plain path must answer it."""
        variables = variables or {}
        ids = self._ids(document, operation_name, variables)
        try:
            shape = orjson.dumps(
                {
                    name: ["id", ids[name][0]] if name in ids else ["value", value]
                    for name, value in variables.items()
                },
                option=orjson.OPT_SORT_KEYS,
            )
        except TypeError:  # e.g. an integer beyond 64 bits: compile it without the cache
            return self._compile(schema, document, operation_name, variables, dialect, set(ids))
        key = (id(schema), id(document), operation_name, dialect, shape)
        cached = self._cache.get(key)
        if cached is not None and cached[0] is document:
            if cached[1] is None:
                return None
            return cached[1].rebound({name: parsed[1] for name, parsed in ids.items()})
        compiled = self._compile(schema, document, operation_name, variables, dialect, set(ids))
        self._cache[key] = (document, compiled)
        return compiled

    def _ids(
        self, document: DocumentNode, operation_name: str | None, variables: dict[str, Any]
    ) -> dict[str, tuple[str, int]]:
        """The operation's ID variables that hold a global id we issue, each parsed."""
        key = (id(document), operation_name)
        known = self._id_names.get(key)
        if known is None or known[0] is not document:
            known = self._id_names[key] = (document, _id_variables(document, operation_name))
        ids = {}
        for name in known[1]:
            value = variables.get(name)
            if isinstance(value, str) and (parsed := parse_id(value)) is not None:
                ids[name] = parsed
        return ids

    def _compile(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation_name: str | None,
        variables: dict[str, Any],
        dialect: str,
        ids: set[str],
    ) -> CompiledRead | None:
        executor = Executor.build(
            schema, document, raw_variable_values=variables, operation_name=operation_name
        )
        if isinstance(executor, list):
            return None  # the plain path reports the variables' errors
        coerced = executor.variable_values.coerced
        id_variables = {id(coerced[name]): name for name in ids if name in coerced}
        try:
            compiled = Compiler(schema, executor, self.settings, dialect, id_variables).compile()
        except Unsupported:
            return None
        return compiled


def _id_variables(document: DocumentNode, operation_name: str | None) -> list[str]:
    """The names of the operation's variables of type ID (or ID!)."""
    names = []
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if operation_name is not None and (
            definition.name is None or definition.name.value != operation_name
        ):
            continue
        names.extend(id_variables(definition))
    return names
