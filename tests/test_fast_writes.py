"""The fast lane's writes answer as execution does, on both engines (fast_writes.py).

Two apps share one database: one answers known mutation documents in the fast lane (the
default), the other executes every mutation (FAST_WRITES=false). Each document is sent to the
lane app once to be remembered, then for one opportunity to each app; the two opportunities
are made alike, so the answers differ only in what must differ: ids, timestamps and batch ids,
which are masked, and nothing else (status, headers and every other byte are compared).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import graphql
import httpx
import pytest
from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLList, GraphQLNonNull, Undefined
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.utilities import coerce_input_value
from hypothesis import assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col
from strawberry.types.arguments import convert_arguments
from strawberry.utils.str_converters import to_snake_case as to_snake

from bench import scenarios
from gql_service import services
from gql_service.app import create_app
from gql_service.graphql import fast_writes
from gql_service.graphql.fast_writes import KnownWrites, plan_write
from gql_service.graphql.http import GraphQLEndpoint
from gql_service.graphql.ids import parse_id
from gql_service.graphql.mutations import FAST_WRITES
from gql_service.graphql.schema import build_schema
from gql_service.models import CloseOutcome, Opportunity, OpportunityClose
from gql_service.records import QUOTE_CHANGE, QuoteChange
from gql_service.repositories import _closing_quotes
from gql_service.settings import Settings
from gql_service.unit_of_work import UnitOfWork
from tests.operations import CLOSE_OPPORTUNITY as EXECUTED_ONLY
from tests.test_statement_count import StatementCounter, opportunity_with_quotes

EVERY_OPPORTUNITY_FIELD = """__typename id name customerName currencyCode estimatedRevenue
  estimatedCloseDate state statusReason forecastCategory actualRevenue actualCloseDate
  description isRevenueSystemCalculated isClosed version createdAt createdBy modifiedAt
  modifiedBy"""
EVERY_CLOSE_FIELD = """__typename id outcome statusReason actualRevenue closeDate description
  state createdAt createdBy canceledAt canceledBy"""
EVERY_QUOTE_FIELD = """__typename id quoteNumber revisionNumber name currencyCode totalAmount
  state statusReason isOpen effectiveFrom effectiveTo closedOn version createdAt createdBy
  modifiedAt modifiedBy"""
ERRORS = """errors { __typename ... on UserError { code message field }
  ... on OpportunityHasOpenQuotesError { openQuotes { id quoteNumber state } } }"""

CLOSE_EVERYTHING = f"""mutation Close($input: CloseOpportunityInput!) {{
  closeOpportunity(input: $input) {{
    __typename
    opportunity {{ {EVERY_OPPORTUNITY_FIELD} }}
    record: opportunityClose {{ {EVERY_CLOSE_FIELD} }}
    closedQuotes {{ {EVERY_QUOTE_FIELD} }}
    {ERRORS}
  }}
}}"""
CLOSE_QUOTES_EVERYTHING = f"""mutation CloseQuotes($id: ID!, $reason: QuoteStatusReason) {{
  done: closeQuotes(input: {{opportunityId: $id, statusReason: $reason,
                             description: "Nächste Runde — ģērbonis"}}) {{
    opportunity {{ id state version stamp: modifiedAt }}
    closedQuotes {{ {EVERY_QUOTE_FIELD} }}
    errors {{ __typename ... on UserError {{ code message field }} }}
  }}
}}"""
WON_LITERAL = """mutation Won($id: ID!) {
  closeOpportunity(input: {opportunityId: $id, outcome: WON, actualRevenue: "1234.5",
                           closeDate: "2026-01-31", description: null}) {
    opportunity { id state statusReason actualRevenue version }
    opportunityClose { outcome actualRevenue closeDate description }
    errors { __typename }
  }
}"""

# Fields with resolvers of their own, fragments, directives: always executed.
NOT_PLAIN = [
    EXECUTED_ONLY,
    """mutation($input: CloseOpportunityInput!) { closeOpportunity(input: $input) {
         opportunity { id openQuoteCount } errors { __typename } } }""",
    """mutation($input: CloseOpportunityInput!) { closeOpportunity(input: $input) {
         ... on CloseOpportunityPayload { opportunity { id } } errors { __typename } } }""",
    """mutation($input: CloseOpportunityInput!, $yes: Boolean!) {
         closeOpportunity(input: $input) { opportunity { id @include(if: $yes) } } }""",
    """mutation($input: CloseOpportunityInput!) { closeOpportunity(input: $input) {
         opportunity { id } opportunity { state } } }""",
]

_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
_QUOTE_NUMBER = re.compile(rb"QUO-[0-9A-Z]+(-\d+)?")  # made at random, or by opportunity
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _masked(body: bytes) -> bytes:
    """The body with each global id, timestamp, batch id and quote number replaced by what
    kind it is."""

    def mask(match: re.Match[bytes]) -> bytes:
        text = match.group(1)
        parsed = parse_id(text.decode())
        if parsed is not None:
            return b'"<%s id>"' % parsed[0].encode()
        if _TIMESTAMP.match(text):
            return b'"<timestamp>"'
        if _UUID.fullmatch(text):
            return b'"<uuid>"'
        # Quote numbers, also within messages ("... closed first: QUO-2-0 rev 0").
        return b'"%s"' % _QUOTE_NUMBER.sub(b"<quote number>", text)

    return _TOKEN.sub(mask, body)


# Ids of other lengths make bodies of other lengths.
VARYING_HEADERS = {"x-request-id", "content-length"}


def _answer(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in response.headers.items() if k not in VARYING_HEADERS}
    return response.status_code, headers, _masked(response.content)


Headers = dict[str, str] | tuple[dict[str, str], dict[str, str]] | None


def gid(pk: int) -> str:
    return scenarios.global_id("Opportunity", pk)


@dataclasses.dataclass
class Pair:
    lane: httpx.AsyncClient
    plain: httpx.AsyncClient
    engine: AsyncEngine  # the lane app's
    plain_engine: AsyncEngine
    known: KnownWrites  # the lane app's

    async def opportunities(self, open_quotes: int = 0) -> tuple[int, int, int]:
        """Three alike: one to teach the lane the document, one for each app."""
        first, mine, theirs = await self.targets(open_quotes)
        return first.pk, mine.pk, theirs.pk

    async def targets(
        self, open_quotes: int = 0, prepare: Prepare | None = None
    ) -> tuple[Target, Target, Target]:
        made = []
        for _ in range(3):
            pk, quotes = await opportunity_with_quotes(self.engine, open_quotes)
            if prepare is not None:
                await prepare(self.engine, pk)
            made.append(Target.of(pk, quotes))
        return made[0], made[1], made[2]

    async def compare(
        self,
        query: str,
        variables: Any,
        open_quotes: int = 0,
        headers: Headers = None,
        *,
        answered: bool = True,
        prepare: Prepare | None = None,
    ) -> bytes:
        """Teach the lane ``query``, then send it for two alike opportunities, one to each
        app; ``variables(id)`` gives the variables for an opportunity's global id. The answers
        must agree, and the lane must have answered its own (or not, if not ``answered``).
        Returns the plain path's body."""
        first, mine, theirs = await self.targets(open_quotes, prepare)
        await self.lane.post("/graphql", json=_body(query, variables, first))
        before = fast_writes.STATS.answered
        lane_headers, plain_headers = headers if isinstance(headers, tuple) else (headers, headers)
        lane = await self.lane.post(
            "/graphql", json=_body(query, variables, mine), headers=lane_headers
        )
        assert fast_writes.STATS.answered - before == (1 if answered else 0), query
        plain = await self.plain.post(
            "/graphql", json=_body(query, variables, theirs), headers=plain_headers
        )
        assert _answer(lane) == _answer(plain), (lane.content, plain.content)
        return plain.content


def _body(query: str, variables: Any, target: Target | int) -> dict[str, Any]:
    if not isinstance(target, Target):
        target = Target.of(target, [])
    if variables is None:
        return {"query": query.replace("__ID__", target)}
    return {"query": query, "variables": variables(target)}


class Target(str):
    """An opportunity's global id, which knows its open quotes' (DRAFT, ACTIVE, DRAFT, ...)."""

    pk: int
    quotes: list[str]

    @classmethod
    def of(cls, pk: int, quotes: list[int]) -> Target:
        target = cls(gid(pk))
        target.pk = pk
        target.quotes = [scenarios.global_id("Quote", q) for q in quotes]
        return target


Prepare = Callable[[AsyncEngine, int], Awaitable[Any]]


def _known(app: Any) -> KnownWrites:
    endpoint = next(r.endpoint for r in app.routes if isinstance(r.endpoint, GraphQLEndpoint))
    known: KnownWrites = endpoint.schema.known_writes
    return known


@pytest.fixture
async def pair(settings: Settings) -> AsyncIterator[Pair]:
    lane_app = create_app(settings)
    plain_app = create_app(dataclasses.replace(settings, fast_writes=False))
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=lane_app), base_url="http://t") as lane,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=plain_app), base_url="http://t"
        ) as plain,
    ):
        yield Pair(lane, plain, lane_app.state.engine, plain_app.state.engine, _known(lane_app))
    await lane_app.state.engine.dispose()
    await plain_app.state.engine.dispose()


async def test_the_benchmarks_writes_answer_alike(pair: Pair) -> None:
    by_id = lambda id: {"id": id}  # noqa: E731
    await pair.compare(scenarios.W1, by_id)
    await pair.compare(scenarios.W2, by_id, open_quotes=3)
    await pair.compare(scenarios.W3, by_id, open_quotes=2)


@pytest.mark.parametrize("outcome", ["WON", "LOST"])
async def test_every_plain_field_of_a_close_answers_alike(pair: Pair, outcome: str) -> None:
    reason = "OUT_SOLD" if outcome == "LOST" else None
    body = await pair.compare(
        CLOSE_EVERYTHING,
        lambda id: {
            "input": {
                "opportunityId": id,
                "outcome": outcome,
                "statusReason": reason,
                "actualRevenue": "98765.4321",
                "closeDate": "2026-02-28",
                "description": 'Lost on price "ē" \\ \n',
                "closeOpenQuotes": True,
            }
        },
        open_quotes=4,
    )
    assert b'"closedQuotes":[{"__typename":"Quote"' in body
    assert b'"errors":[]' in body


async def test_closing_quotes_with_literals_aliases_and_a_left_out_variable_answers_alike(
    pair: Pair,
) -> None:
    for variables in ({"reason": "CANCELED"}, {}):
        await pair.compare(
            CLOSE_QUOTES_EVERYTHING, lambda id, more=variables: {"id": id, **more}, open_quotes=5
        )
    await pair.compare(WON_LITERAL, lambda id: {"id": id})
    # The lane knows documents by their text: an id written into it makes a new one each time.
    await pair.compare(
        WON_LITERAL.replace("Won($id: ID!)", "Won").replace("$id", '"__ID__"'), None, answered=False
    )


# Every field of a closed quote that the close changed (records.QUOTE_CHANGE), some twice.
CLOSE_QUOTES_CHANGES = """mutation CloseQuotes($id: ID!) {
  done: closeQuotes(input: {opportunityId: $id, statusReason: CANCELED, description: "Vēlu"}) {
    __typename
    opportunity { id state version }
    closedQuotes { __typename id state statusReason closedOn version modifiedAt modifiedBy
                   again: state kind: __typename }
    errors { __typename ... on UserError { code message field } }
  }
}"""


async def _quote_closes(engine: AsyncEngine, pk: int) -> tuple[list[tuple[Any, ...]], int]:
    """The close records of an opportunity's quotes, without what differs between two alike
    closes (ids, numbers, batch ids), and how many batches they make."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT c.revision_number, c.status_reason, c.close_date, c.description, "
                "c.created_by, c.batch_id FROM quote_close c "
                "JOIN quote q ON q.id = c.quote_id WHERE q.opportunity_id = :id ORDER BY q.id"
            ),
            {"id": pk},
        )
        found = [tuple(row) for row in rows]
    return [row[:-1] for row in found], len({row[-1] for row in found})


@pytest.mark.parametrize("reads", ["what the close changed", "W2", "nothing of them"])
async def test_closing_quotes_for_what_the_close_changed_takes_the_lean_call_alike(
    pair: Pair, reads: str
) -> None:
    """A closeQuotes whose payload reads of the closed quotes only what the close changed
    takes the write's lean call, which returns only that: the answer is execution's, and so
    are the close records it wrote."""
    query = {
        "what the close changed": CLOSE_QUOTES_CHANGES,
        "W2": scenarios.W2,
        "nothing of them": """mutation CloseQuotes($id: ID!) {
          closeQuotes(input: {opportunityId: $id}) { opportunity { id } errors { __typename } }
        }""",
    }[reads]
    first, mine, theirs = await pair.targets(open_quotes=3)
    plan = plan_write(build_schema(), graphql.parse(query), None)
    assert plan is not None
    assert plan.lean is FAST_WRITES["closeQuotes"].lean
    await pair.lane.post("/graphql", json=_body(query, lambda id: {"id": id}, first))
    before = (fast_writes.STATS.answered, fast_writes.STATS.lean)
    lane = await pair.lane.post("/graphql", json=_body(query, lambda id: {"id": id}, mine))
    assert (fast_writes.STATS.answered, fast_writes.STATS.lean) == (before[0] + 1, before[1] + 1)
    plain = await pair.plain.post("/graphql", json=_body(query, lambda id: {"id": id}, theirs))
    assert _answer(lane) == _answer(plain), (lane.content, plain.content)
    if reads != "nothing of them":
        assert lane.content.count(b'"CLOSED"') == 3 * (1 if reads == "W2" else 2)
    written, batches = await _quote_closes(pair.engine, mine.pk)
    # The closed quote opportunity_with_quotes starts with, then the three in one batch.
    assert (len(written), batches) == (4, 2)
    assert (written, batches) == await _quote_closes(pair.plain_engine, theirs.pk)


def test_a_quote_change_is_what_a_close_sets_and_the_id() -> None:
    """records.QUOTE_CHANGE names QuoteChange's attributes, which are the columns the closes'
    UPDATE sets, and the quote's id."""
    assert tuple(name for name in vars(QuoteChange) if not name.startswith("_")) == QUOTE_CHANGE
    sets = _closing_quotes(False, False)[2]._values  # type: ignore[attr-defined]
    assert [getattr(column, "key", column) for column in sets] == list(QUOTE_CHANGE[1:])


@pytest.mark.parametrize(
    "field", ["name", "quoteNumber", "isOpen", "totalAmount", "createdAt", "createdBy"]
)
def test_a_closed_quote_field_the_close_did_not_change_takes_the_whole_call(field: str) -> None:
    """One field beyond what the close changed (a computed one too) and the lane makes the
    write's own call, whose quotes are whole: CLOSE_QUOTES_EVERYTHING answers alike above."""
    query = CLOSE_QUOTES_CHANGES.replace("modifiedBy", f"modifiedBy {field}")
    plan = plan_write(build_schema(), graphql.parse(query), None)
    assert plan is not None
    assert plan.lean is None
    whole = plan_write(build_schema(), graphql.parse(CLOSE_QUOTES_EVERYTHING), None)
    assert whole is not None
    assert whole.lean is None


OPPORTUNITY = f"opportunity {{ {EVERY_OPPORTUNITY_FIELD} }}"
QUOTE = f"quote {{ {EVERY_QUOTE_FIELD} }}"
USER_ERRORS = "errors { __typename ... on UserError { code message field } }"


async def _closed(engine: AsyncEngine, pk: int) -> None:
    await services.close_opportunity(
        UnitOfWork(engine, actor="tester"),
        opportunity_id=pk,
        outcome=CloseOutcome.LOST,
        close_open_quotes=True,
    )


# Every other mutation of FAST_WRITES: (field, input type, selection, input, prepare).
OTHER_WRITES: list[tuple[str, str, str, Callable[[Target], dict[str, Any]], Prepare | None]] = [
    (
        "createOpportunity",
        "CreateOpportunityInput",
        OPPORTUNITY,
        lambda t: {
            "name": "Deal",
            "customerName": "Contoso",
            "currencyCode": "EUR",
            "estimatedRevenue": "1250000.5",
            "estimatedCloseDate": "2027-03-31",
        },
        None,
    ),
    (
        "updateOpportunity",
        "UpdateOpportunityInput",
        OPPORTUNITY,
        lambda t: {
            "opportunityId": t,
            "name": "Renamed",
            "description": None,
            "forecastCategory": "COMMITTED",
        },
        None,
    ),
    (
        "reopenOpportunity",
        "ReopenOpportunityInput",
        f"{OPPORTUNITY} canceledCloses {{ {EVERY_CLOSE_FIELD} }}",
        lambda t: {"opportunityId": t},
        _closed,
    ),
    (
        "createQuote",
        "CreateQuoteInput",
        QUOTE,
        lambda t: {
            "opportunityId": t,
            "name": "Fixed price",
            "totalAmount": "99.5",
            "effectiveFrom": "2027-01-01",
        },
        None,
    ),
    (
        "updateQuote",
        "UpdateQuoteInput",
        QUOTE,
        lambda t: {"quoteId": t.quotes[0], "name": "Cheaper", "totalAmount": "12"},
        None,
    ),
    ("activateQuote", "ActivateQuoteInput", QUOTE, lambda t: {"quoteId": t.quotes[0]}, None),
    (
        "reviseQuote",
        "ReviseQuoteInput",
        f"{QUOTE} revisedQuote {{ {EVERY_QUOTE_FIELD} }}",
        lambda t: {"quoteId": t.quotes[1]},
        None,
    ),
    (
        "closeQuote",
        "CloseQuoteInput",
        QUOTE,
        lambda t: {"quoteId": t.quotes[1], "statusReason": "CANCELED", "description": "Late"},
        None,
    ),
    (
        "createCompetitor",
        "CreateCompetitorInput",
        "competitor { __typename id name website notes createdAt createdBy }",
        # Names are unique: each its opportunity's id, which the comparison masks.
        lambda t: {"name": str(t), "website": "https://example.com"},
        None,
    ),
]


@pytest.mark.parametrize("write", OTHER_WRITES, ids=[w[0] for w in OTHER_WRITES])
async def test_every_other_lane_mutation_answers_alike(pair: Pair, write: Any) -> None:
    field, input_type, selection, input, prepare = write
    query = f"""mutation Write($input: {input_type}!) {{
      {field}(input: $input) {{ __typename {selection} {USER_ERRORS} }}
    }}"""
    await pair.compare(query, lambda t: {"input": input(t)}, open_quotes=2, prepare=prepare)


def test_every_lane_mutation_is_tested() -> None:
    assert {w[0] for w in OTHER_WRITES} | {"closeOpportunity", "closeQuotes"} == set(FAST_WRITES)


@pytest.mark.parametrize("query", NOT_PLAIN)
async def test_documents_of_other_shapes_are_executed(pair: Pair, query: str) -> None:
    await pair.compare(
        query,
        lambda id: {"input": {"opportunityId": id, "outcome": "LOST"}, "yes": True},
        answered=False,
    )
    # Remembered as one the lane leaves to execution, so that it is not planned again.
    assert (query, None) in pair.known
    assert pair.known.get(query, None) is None


@pytest.mark.parametrize("language", ["en", "lv"])
async def test_a_refused_close_runs_once_and_answers_with_the_same_errors(
    pair: Pair, language: str
) -> None:
    """The lane's refused call is answered by the resolver from its exception, in the
    client's language: no second run (as many statements as on the plain path), nothing
    written."""
    variables = lambda id: {"input": {"opportunityId": id, "outcome": "LOST"}}  # noqa: E731
    first, mine, theirs = await pair.opportunities(open_quotes=2)
    await pair.lane.post("/graphql", json=_body(CLOSE_EVERYTHING, variables, first))
    counts, answers = [], []
    for client, engine, pk in (
        (pair.lane, pair.engine, mine),
        (pair.plain, pair.plain_engine, theirs),
    ):
        handed_over = fast_writes.STATS.handed_over
        with StatementCounter(engine) as counter:
            response = await client.post(
                "/graphql",
                json=_body(CLOSE_EVERYTHING, variables, pk),
                headers={"accept-language": language},
            )
        counts.append(counter.count)
        answers.append(_answer(response))
        assert fast_writes.STATS.handed_over - handed_over == (1 if client is pair.lane else 0)
        payload = response.json()["data"]["closeOpportunity"]
        assert [e["code"] for e in payload["errors"]] == ["OPPORTUNITY_HAS_OPEN_QUOTES"]
        assert len(payload["errors"][0]["openQuotes"]) == 2
    assert counts[0] == counts[1]
    assert answers[0] == answers[1]
    assert answers[0][1]["content-language"] == language
    async with pair.engine.connect() as connection:
        states = await connection.scalars(
            select(col(Opportunity.state)).where(col(Opportunity.id).in_([mine, theirs]))
        )
        assert [s.name for s in states] == ["OPEN", "OPEN"]
        closes = await connection.scalars(
            select(col(OpportunityClose.id)).where(
                col(OpportunityClose.opportunity_id).in_([mine, theirs])
            )
        )
        assert closes.all() == []


@pytest.mark.parametrize(
    "case",
    ["unknown id", "bad enum", "dry run", "bad token", "idempotency key", "negotiated"],
)
async def test_what_the_lane_leaves_to_execution_answers_alike(pair: Pair, case: str) -> None:
    """Refused input, dry runs, refused callers and idempotent requests: the normal path
    answers; a negotiated media type is the lane's, the same as execution's."""
    headers: Headers = {
        "bad token": {"authorization": "Bearer not-a-token"},
        "negotiated": {"accept": "application/graphql-response+json"},
    }.get(case)

    def variables(id: str) -> dict[str, Any]:
        input: dict[str, Any] = {"opportunityId": id, "outcome": "LOST"}
        if case == "unknown id":
            input["opportunityId"] = gid(10**9)
        if case == "bad enum":
            input["outcome"] = "MAYBE"
        if case == "dry run":
            input["dryRun"] = True
        return {"input": input}

    if case == "idempotency key":  # a key per app: the second would replay the first's
        headers = ({"idempotency-key": "close-lane"}, {"idempotency-key": "close-plain"})
    await pair.compare(CLOSE_EVERYTHING, variables, headers=headers, answered=case == "negotiated")


def _json_values(type_: Any) -> st.SearchStrategy[Any]:
    """Values a client may send for a GraphQL input type, nulls included where allowed."""
    required = isinstance(type_, GraphQLNonNull)
    inner = type_.of_type if required else type_
    base: st.SearchStrategy[Any]
    if isinstance(inner, GraphQLList):
        base = st.lists(_json_values(inner.of_type), max_size=2)
    elif isinstance(inner, GraphQLEnumType):
        base = st.sampled_from(list(inner.values))
    elif isinstance(inner, GraphQLInputObjectType):
        fields = {name: _json_values(field.type) for name, field in inner.fields.items()}
        needed = [
            name
            for name, field in inner.fields.items()
            if isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined
        ]
        base = st.fixed_dictionaries(
            {name: fields[name] for name in needed},
            optional={name: s for name, s in fields.items() if name not in needed},
        )
    else:
        base = {
            "Boolean": st.booleans(),
            "Int": st.integers(-3, 3),
            "Decimal": st.sampled_from(["0", "12.5", "-0.0001", "1e3"]),
            "Date": st.sampled_from(["2026-01-31", "1999-12-31"]),
        }.get(inner.name, st.text(max_size=4))
    return base if required else st.none() | base


@pytest.mark.parametrize("field", sorted(FAST_WRITES))
def test_the_lanes_input_conversion_is_strawberrys(field: str) -> None:
    """Whatever input a client sends, the lane's converter builds what strawberry's
    convert_arguments builds for the resolver."""
    schema = build_schema()
    mutation = schema._schema.mutation_type
    assert mutation is not None
    input_type = mutation.fields[field].args["input"].type
    document = graphql.parse(
        f"mutation($input: {input_type}) {{ {field}(input: $input) {{ errors {{ __typename }} }} }}"
    )
    plan = plan_write(schema, document, None)
    assert plan is not None
    strawberry_field = next(
        f for f in schema.get_type_by_name("Mutation").fields if f.python_name == to_snake(field)
    )

    @given(_json_values(input_type))
    @hypothesis_settings(max_examples=300, deadline=None)
    def converts_alike(value: Any) -> None:
        raw = coerce_input_value(value, input_type)
        expected = convert_arguments(
            {"input": raw},
            strawberry_field.arguments,
            scalar_registry=schema.schema_converter.scalar_registry,
            config=schema.config,
        )["input"]
        assert plan.convert(raw) == expected

    converts_alike()


def _graphql_literal(value: Any, type_: Any) -> str:
    """``value`` (as a client sends it in JSON) written as a GraphQL literal of ``type_``."""
    inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if value is None:
        return "null"
    if isinstance(inner, GraphQLList):
        items = value if isinstance(value, list) else [value]
        return "[" + ", ".join(_graphql_literal(item, inner.of_type) for item in items) + "]"
    if isinstance(inner, GraphQLInputObjectType):
        fields = (f"{k}: {_graphql_literal(v, inner.fields[k].type)}" for k, v in value.items())
        return "{" + ", ".join(fields) + "}"
    if isinstance(inner, GraphQLEnumType):
        return str(value)
    return json.dumps(value)


def _schema_and_input(field: str) -> tuple[Any, Any]:
    """The schema, and the input type of the mutation ``field``'s argument ``input``."""
    schema = build_schema()
    mutation = schema._schema.mutation_type
    assert mutation is not None
    return schema, mutation.fields[field].args["input"].type.of_type


def _planned(
    schema: Any,
    data: st.DataObject,
    field: str,
    input_type: Any,
    variable: Callable[[str, Any], str],
) -> fast_writes.WritePlan:
    """The lane's plan of a valid ``_document`` (hypothesis draws again for an invalid one)."""
    document = _document(data, field, input_type, variable)
    assume(not graphql.validate(schema._schema, document))
    plan = plan_write(schema, document, None)
    assert plan is not None
    return plan


def _or_refused(call: Callable[[], Any], *refusals: type[Exception]) -> Any:
    """``call()``, or "refused" where it raises one of ``refusals``."""
    try:
        return call()
    except refusals:
        return "refused"


def _document(
    data: st.DataObject, field: str, input_type: Any, variable: Callable[[str, Any], str]
) -> graphql.DocumentNode:
    """A mutation of ``field`` whose input is an object literal, each of its fields absent
    (where it may be), a constant, or a variable that ``variable(name, input field)``
    declares (it returns the declaration, and draws the variable's value itself)."""
    definitions, fields = [], []
    for name, input_field in input_type.fields.items():
        # (A document that leaves out a required field is refused before any coercion.)
        required = graphql.is_required_input_field(input_field)
        ways = ["constant", "variable"] if required else ["absent", "constant", "variable"]
        how = data.draw(st.sampled_from(ways), label=name)
        if how == "constant":
            value = data.draw(_json_values(input_field.type), label=f"{name} value")
            fields.append(f"{name}: {_graphql_literal(value, input_field.type)}")
        elif how == "variable":
            definitions.append(f"${name}: {variable(name, input_field)}")
            fields.append(f"{name}: ${name}")
    header = f"({', '.join(definitions)})" if definitions else ""
    root = f"{field}(input: {{{', '.join(fields)}}})"
    return graphql.parse(f"mutation{header} {{ {root} {{ errors {{ __typename }} }} }}")


@pytest.mark.parametrize("field", sorted(FAST_WRITES))
def test_the_lanes_literal_inputs_coerce_as_graphql_core_does(field: str) -> None:
    """An input written as an object literal, each of its fields a constant, a variable (given
    a value, null, or none) or absent: the lane's coercion (constants once per document) gives
    what graphql-core's get_argument_values gives, and refuses what it refuses."""
    schema, input_type = _schema_and_input(field)

    @given(st.data())
    @hypothesis_settings(max_examples=150, deadline=None)
    def coerces_alike(data: st.DataObject) -> None:
        variables: dict[str, Any] = {}

        def variable(name: str, input_field: Any) -> str:
            type_ = input_field.type
            declared = str(type_)
            if isinstance(type_, GraphQLNonNull) and data.draw(st.booleans()):
                # A nullable variable with a default may fill a non-null field; sent as
                # null, it makes the input invalid.
                type_ = type_.of_type
                default = data.draw(_json_values(input_field.type), label=f"{name} default")
                declared = f"{type_} = {_graphql_literal(default, type_)}"
            nullable = not isinstance(type_, GraphQLNonNull)
            if not nullable or data.draw(st.booleans(), label=f"{name} given"):
                variables[name] = data.draw(_json_values(type_))
            return declared

        plan = _planned(schema, data, field, input_type, variable)
        literal = plan.literal
        assert literal is not None
        coerced = get_variable_values(
            schema._schema, plan.operation.variable_definitions or (), variables
        )
        assume(not isinstance(coerced, list))  # execution refuses the variables first
        assert isinstance(coerced, VariableValues)
        expected = _or_refused(
            lambda: get_argument_values(plan.field, plan.node, coerced)["input"],
            graphql.GraphQLError,
        )
        assert _or_refused(partial(literal, coerced), fast_writes.Declined) == expected

    coerces_alike()


@pytest.mark.parametrize("field", sorted(FAST_WRITES))
def test_an_input_remembered_for_its_variables_shape_is_the_one_converted_afresh(
    field: str,
) -> None:
    """The lane converts a document's input once per shape of its variables (the ID
    variables' strings left out) and copies it with the ids put in place: for every set of
    variables, what it gives is what converting them afresh gives, or both refuse them."""
    schema, input_type = _schema_and_input(field)

    @given(st.data())
    @hypothesis_settings(max_examples=100, deadline=None)
    def remembered_alike(data: st.DataObject) -> None:
        variables: dict[str, Any] = {}

        def variable(name: str, input_field: Any) -> str:
            variables[name] = data.draw(_json_values(input_field.type), label=f"${name}")
            return str(input_field.type)

        plan = _planned(schema, data, field, input_type, variable)
        ids = st.text(max_size=4) | st.integers(-3, 3) | st.none()
        for round_ in range(3):
            given_ = dict(variables)
            if round_:
                for name in plan.id_variables & given_.keys():
                    given_[name] = data.draw(ids, label=f"${name} in round {round_}")
            expected = _or_refused(partial(plan._converted, schema, given_), fast_writes.Declined)
            actual = _or_refused(partial(plan.input, schema, given_), fast_writes.Declined)
            assert actual == expected

    remembered_alike()


@pytest.mark.parametrize(
    "scalar", ["Int", "String", "ID", "Boolean", "Date", "DateTime", "Decimal"]
)
def test_the_lanes_leaves_render_as_graphql_core_serializes(scalar: str) -> None:
    """A leaf the lane passes through as it is (a str for String or ID, a bool, an Int within
    32 bits) is what the scalar's own serialization gives; every other value is serialized."""
    type_ = build_schema()._schema.type_map[scalar]
    assert isinstance(type_, graphql.GraphQLScalarType)
    render = fast_writes._leaf_renderer(type_)

    @given(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**40), max_value=2**40)
        | st.floats(allow_nan=False)
        | st.text(max_size=12)
        | st.dates()
        | st.decimals(allow_nan=False, allow_infinity=False)
    )
    @hypothesis_settings(max_examples=300, deadline=None)
    def renders_alike(value: Any) -> None:
        try:
            expected = None if value is None else type_.coerce_output_value(value)
        except Exception as exc:
            with pytest.raises(type(exc)):
                render(value)
            return
        rendered = render(value)
        assert rendered == expected
        assert type(rendered) is type(expected)

    renders_alike()
