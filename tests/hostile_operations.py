# ruff: noqa: RUF001 - look-alike characters are the point of hostile text
"""Hostile operations: documents generated from the schema, and malformed request bodies.

The documents come from hypothesis-graphql, one strategy per root field of Query and Mutation,
valid ones and ones with a schema violation. Their scalar values mix real global ids of seeded
rows with hostile text: NUL bytes, huge strings, ids written with non-ASCII digits, ids and
integers past every integer type, decimals and dates that only look like numbers.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import itertools
import json
from collections.abc import Iterator
from typing import Any

import graphql
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, queries
from hypothesis_graphql._strategies.strategy import GraphQLStrategy

from gql_service.graphql.schema import build_schema

# Types whose global ids the seed data makes real (primary keys 1..REAL_KEYS).
NODE_TYPES = (
    "Opportunity",
    "Quote",
    "Competitor",
    "OpportunityClose",
    "ProjectContract",
    "ContractLine",
)
REAL_KEYS = 8
HUGE = 50_001


def raw_id(text: str) -> str:
    """A global id built the way ours are (unpadded URL-safe base64), from any text."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


REAL_IDS = [raw_id(f"{kind}:{key}") for kind in NODE_TYPES for key in range(1, REAL_KEYS + 1)]
HOSTILE_IDS = [
    raw_id("Opportunity:²"),
    raw_id("Opportunity:١"),
    raw_id("Opportunity:𝟙"),
    raw_id("Quote:٣"),
    raw_id("Opportunity:2147483648"),
    raw_id("Opportunity:9223372036854775807"),
    raw_id("Opportunity:9223372036854775808"),
    raw_id("Opportunity:" + "9" * 40),
    raw_id("Opportunity:0"),
    raw_id("Opportunity:-1"),
    raw_id("Opportunity:01"),
    raw_id("Opportunity: 1"),
    raw_id("Opportunity:1\x00"),
    raw_id("Opportunity\x00:1"),
    raw_id("Opportunity:"),
    raw_id(":1"),
    raw_id("Node:1"),
    raw_id("__typename:1"),
    base64.b64encode(b"Quote:1").decode(),
    base64.b64encode(b"\xff\xfe:1").decode(),
    "",
    "=",
    "====",
    "\x00",
    "Opportunity:1",
    "T3Bwb3J0dW5pdHk6MQ==",
    "T3Bwb3J0dW5pdHk6MQ" * 3000,
]
HOSTILE_TEXT = [
    "Acme",
    "EUR",
    "USD",
    "eur",
    "XXX",
    "€",
    "",
    " ",
    "\x00",
    "Acme\x00Corp",
    "\x00" * 300,
    "x" * 201,
    "x" * 2_001,
    "x" * HUGE,
    "%" * HUGE,
    "_%" * 30,
    "%",
    "_",
    "\\",
    "'",
    "Robert'); DROP TABLE opportunity;--",
    "١٢٣",
    "𝟙𝟚𝟛",
    "\u202e\u0635",
    "\ufeff",
    "\ud7ff\ue000\uffff",
    "🦄" * 100,
    "a\r\nb",
]
HOSTILE_DECIMALS = [
    "0",
    "1.5",
    "1250000.50",
    "12.3456",
    "12.34567",
    "-1",
    "-0",
    "1e3",
    "1E+400",
    "1e-1000000",
    "1e999999999",
    "NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "١٢",
    "１２",
    "1_000",
    " 1",
    "0x10",
    "9" * 40,
    "9" * 5_000,
    "0." + "1" * 5_000,
    "",
    "abc",
]
HOSTILE_DATES = [
    "2026-11-23",
    "0001-01-01",
    "9999-12-31",
    "2026-02-30",
    "2026-1-1",
    "20261123",
    "２０２６-１１-２３",
    "٢٠٢٦-١١-٢٣",
    "2026-11-23T00:00:00",
    "-2026-11-23",
    "",
    "yesterday",
]
HOSTILE_DATETIMES = [
    "2026-11-23T20:35:29.123456+00:00",
    "2026-11-23T20:35:29",
    "0001-01-01T00:00:00-23:59",
    "9999-12-31T23:59:59+14:00",
    "2026-11-23T25:00:00+00:00",
    "",
]
HOSTILE_INTS = [0, -1, 1, 2, 50, 100, 101, 2**31 - 1, -(2**31), 2**31, 2**63, 10**30]


def _string(value: str) -> graphql.ValueNode:
    return graphql.StringValueNode(value=value)


def _int(value: int) -> graphql.ValueNode:
    return graphql.IntValueNode(value=str(value))


def scalar_strategies() -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    """Value strategies for every scalar, built-in ones included, with hostile text mixed in."""
    text = st.text(st.characters(codec="utf-8", max_codepoint=0xFFFF), max_size=24)
    return {
        "ID": st.one_of(
            st.sampled_from(REAL_IDS).map(_string),
            st.sampled_from(HOSTILE_IDS).map(_string),
            text.map(_string),
            st.sampled_from(HOSTILE_INTS).map(_int),
        ),
        "String": st.one_of(st.sampled_from(HOSTILE_TEXT), text).map(_string),
        "Int": st.one_of(st.integers(-3, 120), st.sampled_from(HOSTILE_INTS)).map(_int),
        "Decimal": st.one_of(
            st.sampled_from(HOSTILE_DECIMALS),
            st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
        ).map(_string),
        "Date": st.one_of(
            st.sampled_from(HOSTILE_DATES), st.dates().map(lambda d: d.isoformat())
        ).map(_string),
        "DateTime": st.sampled_from(HOSTILE_DATETIMES).map(_string),
    }


@functools.cache
def graphql_schema() -> graphql.GraphQLSchema:
    return build_schema()._schema


def document_strategy(schema: graphql.GraphQLSchema) -> st.SearchStrategy[graphql.DocumentNode]:
    """One root field per document, valid or with one violation, over Query and Mutation."""
    scalars = scalar_strategies()
    strategies: list[st.SearchStrategy[graphql.DocumentNode]] = []
    assert schema.query_type is not None
    assert schema.mutation_type is not None
    for make, root in ((queries, schema.query_type), (mutations, schema.mutation_type)):
        for name in root.fields:
            for mode in (Mode.POSITIVE, Mode.NEGATIVE):
                strategies.append(
                    make(
                        schema,
                        fields=[name],
                        custom_scalars=scalars,
                        print_ast=_as_document,
                        mode=mode,
                    )
                )
    return st.one_of(strategies)


def _as_document(document: graphql.DocumentNode) -> graphql.DocumentNode:
    return document


def generate_documents(count: int) -> list[graphql.DocumentNode]:
    """``count`` documents, the same ones on every run (derandomized, no example database)."""
    schema = graphql_schema()
    documents: list[graphql.DocumentNode] = []

    @hypothesis_settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(document_strategy(schema))
    def collect(document: graphql.DocumentNode) -> None:
        documents.append(document)

    with _memoized_argument_strategies():
        collect()
    return documents


@contextlib.contextmanager
def _memoized_argument_strategies() -> Iterator[None]:
    """hypothesis-graphql builds a new composite strategy for a field's arguments at every draw.

    Building one inspects the function's source (milliseconds each); the strategy depends only
    on the field's arguments, so building it once per field makes generation ~30% faster.
    """
    original = GraphQLStrategy.list_of_arguments
    memo: dict[tuple[int, int], tuple[Any, object, object]] = {}

    def memoized(self: GraphQLStrategy, arguments: dict[str, graphql.GraphQLArgument]) -> Any:
        key = (id(self), id(arguments))
        if key not in memo:
            memo[key] = (original(self, arguments), self, arguments)
        return memo[key][0]

    GraphQLStrategy.list_of_arguments = memoized  # type: ignore[method-assign]
    try:
        yield
    finally:
        GraphQLStrategy.list_of_arguments = original  # type: ignore[method-assign]


@dataclasses.dataclass(frozen=True)
class Operation:
    """A generated document as a request body: literals inline, or hoisted into variables."""

    query: str
    variables: dict[str, Any] | None = None

    def body(self) -> bytes:
        payload: dict[str, Any] = {"query": self.query}
        if self.variables is not None:
            payload["variables"] = self.variables
        return json.dumps(payload, ensure_ascii=False).encode()


def hoisted(
    document: graphql.DocumentNode, schema: graphql.GraphQLSchema
) -> tuple[Operation, dict[str, graphql.GraphQLInputType]]:
    """The same operation with every known field argument sent as a variable, and their types.

    Literals and variables take different coercion paths; unknown arguments stay inline.
    """
    type_info = graphql.TypeInfo(schema)
    definitions: list[graphql.VariableDefinitionNode] = []
    variables: dict[str, Any] = {}
    types: dict[str, graphql.GraphQLInputType] = {}

    class Hoist(graphql.Visitor):
        def enter_argument(self, node: graphql.ArgumentNode, *_: Any) -> Any:
            argument = type_info.get_argument()
            if argument is None:
                return None
            name = f"v{len(variables)}"
            variables[name] = graphql.value_from_ast_untyped(node.value)
            types[name] = argument.type
            variable = graphql.VariableNode(name=graphql.NameNode(value=name))
            definitions.append(
                graphql.VariableDefinitionNode(
                    variable=variable, type=graphql.parse_type(str(argument.type))
                )
            )
            return graphql.ArgumentNode(name=node.name, value=variable)

    edited = graphql.visit(document, graphql.TypeInfoVisitor(type_info, Hoist()))
    operation = dataclasses.replace(edited.definitions[0], variable_definitions=tuple(definitions))
    text = graphql.print_ast(graphql.DocumentNode(definitions=(operation,)))
    return Operation(text, variables), types


class HostileValues:
    """Every hostile value of each scalar in turn, so each one reaches many arguments.

    hypothesis draws the first values of a list far more often than the rest; this walks them
    all, deterministically, over the variables of the generated operations.
    """

    def __init__(self) -> None:
        mixed_ids = [value for pair in zip(HOSTILE_IDS, REAL_IDS, strict=False) for value in pair]
        self.pools: dict[str, Iterator[Any]] = {
            "ID": itertools.cycle(mixed_ids + REAL_IDS[len(HOSTILE_IDS) :]),
            "String": itertools.cycle(HOSTILE_TEXT),
            "Int": itertools.cycle(HOSTILE_INTS),
            "Decimal": itertools.cycle(HOSTILE_DECIMALS),
            "Date": itertools.cycle(HOSTILE_DATES),
            "DateTime": itertools.cycle(HOSTILE_DATETIMES),
        }

    def replace(self, value: Any, type_: graphql.GraphQLInputType) -> Any:
        """``value`` with each scalar leaf replaced by the next hostile value of its type."""
        if isinstance(type_, graphql.GraphQLNonNull):
            return self.replace(value, type_.of_type)
        if value is None:
            return None
        if isinstance(type_, graphql.GraphQLList):
            items = value if isinstance(value, list) else [value]
            return [self.replace(item, type_.of_type) for item in items]
        if isinstance(type_, graphql.GraphQLInputObjectType):
            if not isinstance(value, dict):
                return value
            return {
                key: self.replace(item, type_.fields[key].type) if key in type_.fields else item
                for key, item in value.items()
            }
        if isinstance(type_, graphql.GraphQLScalarType) and type_.name in self.pools:
            return next(self.pools[type_.name])
        return value


FORMS = 4


@functools.cache
def generated_operations(count: int) -> tuple[Operation, ...]:
    """Each generated document in FORMS forms: with inline literals, with the same values as
    variables, and twice with the variables' scalars replaced by the next hostile values."""
    schema = graphql_schema()
    hostile = HostileValues()
    operations: list[Operation] = []
    for document in generate_documents(count):
        operations.append(Operation(graphql.print_ast(document)))
        hoisted_operation, types = hoisted(document, schema)
        operations.append(hoisted_operation)
        for _ in range(FORMS - 2):
            variables = {
                name: hostile.replace(value, types[name])
                for name, value in (hoisted_operation.variables or {}).items()
            }
            operations.append(Operation(hoisted_operation.query, variables))
    return tuple(operations)


def _nested(opening: str, closing: str, depth: int, inner: str = "1") -> str:
    return opening * depth + inner + closing * depth


NODE_BY_VARIABLE = "query($v: ID!) { node(id: $v) { id } }"
FIRST_BY_VARIABLE = "query($v: Int) { opportunities(first: $v) { totalCount } }"
JSON = "application/json"


@dataclasses.dataclass(frozen=True)
class Malformed:
    """A request no well-behaved client sends; ``graphql_400``: it must get a 400 GraphQL error."""

    label: str
    body: bytes
    content_type: str | None = JSON
    method: str = "POST"
    path: str = "/graphql"
    graphql_400: bool = False


def _json(payload: object) -> bytes:
    return json.dumps(payload).encode()


def _query(query: object, **extra: object) -> bytes:
    return _json({"query": query, **extra})


def _with_variables(query: str, variables: bytes) -> bytes:
    """A body whose variables are raw JSON text, for what ``json.dumps`` would never write."""
    return b'{"query": ' + _json(query) + b', "variables": ' + variables + b"}"


# The hostile inputs of issue 5, sent as they are before the generated operations.
NAME_CONTAINS = "query($v: String) { opportunities(filter: {nameContains: $v}) { totalCount } }"
OPPORTUNITY_BY_ID = "query($v: ID!) { opportunity(id: $v) { id name } }"
CREATE_OPPORTUNITY_NAMED = """
mutation($v: String!) {
  createOpportunity(input: {name: $v, customerName: "C", currencyCode: "EUR"}) {
    opportunity { id } errors { __typename }
  }
}"""
KNOWN_HOSTILE = [
    Operation(NAME_CONTAINS, {"v": "x" * HUGE}),
    Operation(NAME_CONTAINS, {"v": "%" * HUGE}),
    Operation(NAME_CONTAINS, {"v": "\x00"}),
    Operation(OPPORTUNITY_BY_ID, {"v": raw_id("Opportunity:²")}),
    Operation(OPPORTUNITY_BY_ID, {"v": raw_id("Opportunity:١")}),
    Operation(OPPORTUNITY_BY_ID, {"v": raw_id("Opportunity:2147483648")}),
    Operation(OPPORTUNITY_BY_ID, {"v": raw_id("Opportunity:" + "9" * 18)}),
    Operation(CREATE_OPPORTUNITY_NAMED, {"v": "a\x00b"}),
    Operation(CREATE_OPPORTUNITY_NAMED, {"v": "x" * HUGE}),
]


MALFORMED = [
    # The bodies named in issue 5: each must get a 400 GraphQL error on a live connection.
    Malformed("json null", b"null", graphql_400=True),
    Malformed("json number", b"5", graphql_400=True),
    Malformed("json string", b'"x"', graphql_400=True),
    Malformed("not UTF-8", b"\xff\xfe\xfd{", graphql_400=True),
    Malformed("not UTF-8 inside a string", b'{"query": "{ __typename }", "x": "\xff"}', True),
    Malformed(
        "variables nested 1,000 deep",
        _with_variables(NODE_BY_VARIABLE, b'{"v": ' + _nested("[", "]", 1_000).encode() + b"}"),
        graphql_400=True,
    ),
    # More of the same family: never a 5xx, always a GraphQL answer, on a live connection.
    Malformed("empty body", b""),
    Malformed("truncated JSON", b'{"query": "{ __typename }"'),
    Malformed("json true", b"true"),
    Malformed("json empty object", b"{}"),
    Malformed("json empty list", b"[]"),
    Malformed("batch", _json([{"query": "{ __typename }"}])),
    Malformed("query is a number", _query(5)),
    Malformed("query is null", _query(None)),
    Malformed("query is a list", _query(["{ __typename }"])),
    Malformed("query is an object", _query({})),
    Malformed("query is empty", _query("")),
    Malformed("query is a comment", _query("# nothing")),
    Malformed("query has a NUL", _query("{ __typename \x00 }")),
    Malformed("query nested 10,000 deep", _query(_nested("{ a ", "}", 10_000, ""))),
    Malformed("variables is a number", _query("{ __typename }", variables=5)),
    Malformed("variables is a string", _query("{ __typename }", variables="x")),
    Malformed("variables is a list", _query("{ __typename }", variables=[])),
    Malformed(
        "variables nested 100,000 deep",
        _with_variables(NODE_BY_VARIABLE, b'{"v": ' + _nested("[", "]", 100_000).encode() + b"}"),
    ),
    Malformed(
        "variable objects nested 1,000 deep",
        _with_variables(
            NODE_BY_VARIABLE, b'{"v": ' + _nested('{"a": ', "}", 1_000).encode() + b"}"
        ),
    ),
    Malformed("variable is NaN", _with_variables(FIRST_BY_VARIABLE, b'{"v": NaN}')),
    Malformed("variable is 1e400", _with_variables(FIRST_BY_VARIABLE, b'{"v": 1e400}')),
    Malformed("variable is 10**30", _query(FIRST_BY_VARIABLE, variables={"v": 10**30})),
    Malformed("variable is a float", _query(FIRST_BY_VARIABLE, variables={"v": 1.5})),
    Malformed("variable id has a NUL", _query(NODE_BY_VARIABLE, variables={"v": "\x00"})),
    Malformed("variable id is 900 KB", _query(NODE_BY_VARIABLE, variables={"v": "T" * 900_000})),
    Malformed("operationName is a number", _query("{ __typename }", operationName=5)),
    Malformed("operationName is unknown", _query("{ __typename }", operationName="Nope")),
    Malformed("extensions is a number", _query("{ __typename }", extensions=5)),
    Malformed("persistedQuery is a number", _json({"extensions": {"persistedQuery": 5}})),
    Malformed(
        "persistedQuery hash is a number",
        _json({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": 5}}}),
    ),
    Malformed(
        "persistedQuery hash only",
        _json({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}}),
    ),
    Malformed("duplicate keys", b'{"query": 5, "query": "{ __typename }"}'),
    Malformed("text/plain", _query("{ __typename }"), content_type="text/plain"),
    Malformed("no content type", _query("{ __typename }"), content_type=None),
    Malformed("form encoded", b"query=%7B__typename%7D", "application/x-www-form-urlencoded"),
    Malformed("multipart without boundary", b"--x\r\n\r\n", "multipart/form-data"),
    Malformed("multipart garbage", b"garbage", "multipart/form-data; boundary=zz"),
    Malformed("UTF-16 JSON", _query("{ __typename }").decode().encode("utf-16"), JSON),
    Malformed("charset latin-1", _query("{ __typename }"), "application/json; charset=latin-1"),
    Malformed("GET truncated query", b"", None, "GET", "/graphql?query=%7B"),
    Malformed("GET bad variables", b"", None, "GET", "/graphql?query=%7B__typename%7D&variables=x"),
    Malformed(
        "GET null variables", b"", None, "GET", "/graphql?query=%7B__typename%7D&variables=null"
    ),
    Malformed("GET not UTF-8", b"", None, "GET", "/graphql?query=%FF%FE"),
    Malformed("GET mutation", b"", None, "GET", "/graphql?query=mutation%7B__typename%7D"),
    Malformed("PUT", _query("{ __typename }"), method="PUT"),
    Malformed("body over the limit", b" " * 1_000_001),
]
