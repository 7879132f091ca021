"""The compiled read path answers byte for byte as the plain path, on both engines.

Two apps share one database: one compiles reads to SQL (the default), the other executes every
field (COMPILED_READS=false). Each read goes to both, and the status, content type and body
bytes must be identical. The reads are the README's and the benchmark's, hand-written ones for
every field, argument and cursor, and generated ones (hypothesis-graphql, valid documents over
every Query field with real ids). A share of them must actually take the compiled path, or the
test would prove nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import queries
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import scenarios
from gql_service import quote_services, services
from gql_service.app import create_app
from gql_service.database import driver_reads, reads_engine
from gql_service.driver_reads import DriverReads
from gql_service.graphql import compiled_reads
from gql_service.seed import seed_demo
from gql_service.settings import Settings
from gql_service.unit_of_work import UnitOfWork
from tests.hostile_operations import REAL_IDS, _as_document, graphql_schema, hoisted, raw_id
from tests.operations import CLOSE_OPPORTUNITY, CLOSE_QUOTES, REOPEN_OPPORTUNITY
from tests.test_contracts import add_quote_lines

# Generated documents, each sent inline and with its arguments as variables: 1,000 reads per engine.
GENERATED = 500
README = Path(__file__).parent.parent / "README.md"

TREE = scenarios.TREE
EVERY_OPPORTUNITY_FIELD = """
  __typename id name customerName currencyCode estimatedRevenue estimatedCloseDate state
  statusReason forecastCategory actualRevenue actualCloseDate description isClosed version
  createdAt createdBy modifiedAt modifiedBy openQuoteCount
"""
EVERY_QUOTE_FIELD = """
  __typename id quoteNumber revisionNumber name currencyCode totalAmount state statusReason
  isOpen effectiveFrom effectiveTo closedOn version createdAt createdBy modifiedAt modifiedBy
  closeRecord { __typename id quoteNumber revisionNumber statusReason closeDate description
                batchId createdAt createdBy }
  opportunity { id name version }
"""
EVERY_CLOSE_FIELD = """
  __typename id outcome statusReason actualRevenue closeDate description state createdAt
  createdBy canceledAt canceledBy opportunity { id state } competitor { __typename id name
  website notes createdAt createdBy }
"""
CONNECTION = """
  __typename totalCount
  pageInfo { __typename hasNextPage hasPreviousPage startCursor endCursor }
  edges { __typename cursor node { id name } }
  nodes { id }
"""
EVERY_LINE_FIELD = """
  __typename id name billingMethod transactionClass quantity unitPrice discount amount version
  createdAt createdBy modifiedAt modifiedBy
"""
EVERY_CONTRACT_FIELD = f"""
  __typename id contractNumber name state customerName currencyCode totalAmount version
  createdAt createdBy modifiedAt modifiedBy opportunity {{ id name }} quote {{ id state }}
  lines {{ totalCount pageInfo {{ hasNextPage endCursor }} nodes {{ {EVERY_LINE_FIELD} }} }}
"""
ORDER_FIELDS = (
    "CREATED_AT",
    "MODIFIED_AT",
    "NAME",
    "ESTIMATED_CLOSE_DATE",
    "ESTIMATED_REVENUE",
    "ACTUAL_CLOSE_DATE",
)
QUOTE_CONNECTION = CONNECTION.replace("node { id name }", "node { id quoteNumber }")
CONTRACT_CONNECTION = CONNECTION.replace("node { id name }", "node { id contractNumber }")

HAND_WRITTEN: list[tuple[str, dict[str, Any]]] = [
    ("{ __typename }", {}),
    (f"query($id: ID!) {{ opportunity(id: $id) {{ {EVERY_OPPORTUNITY_FIELD} }} }}", {"id": "O1"}),
    (
        f"""query($id: ID!) {{ opportunity(id: $id) {{ id
              quotes {{ {QUOTE_CONNECTION} nodes {{ {EVERY_QUOTE_FIELD} }} }}
              closeHistory {{ {EVERY_CLOSE_FIELD} }} }} }}""",
        {"id": "O2"},
    ),
    (
        """query($id: ID!, $first: Int, $after: String, $filter: QuoteFilter) {
             opportunity(id: $id) { quotes(first: $first, after: $after, filter: $filter) {
               totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
               edges { cursor node { id state } } } } }""",
        {"id": "O2", "first": 1},
    ),
    (f"query($id: ID!) {{ quote(id: $id) {{ {EVERY_QUOTE_FIELD} }} }}", {"id": "Q1"}),
    ("query($id: ID!) { quote(id: $id) { id } }", {"id": "O1"}),  # an opportunity's id: null
    ("query($id: ID!) { opportunity(id: $id) { id } }", {"id": "nonsense"}),
    ("query($id: ID!) { opportunity(id: $id) { id } }", {"id": raw_id("Opportunity:999999")}),
    (
        f"""query($id: ID!) {{ node(id: $id) {{ __typename id
              ... on Opportunity {{ name state }} ... on Quote {{ quoteNumber }}
              ... on OpportunityClose {{ {EVERY_CLOSE_FIELD} }}
              ... on Competitor {{ name }} ... on QuoteClose {{ batchId }} }} }}""",
        {"id": "C1"},
    ),
    (
        """query($ids: [ID!]!) { nodes(ids: $ids) { __typename id
             ... on Opportunity { name } ... on Quote { name } ... on QuoteClose { batchId } } }""",
        {"ids": ["O1", "Q1", "nonsense", "QC1", "K1", "OC1", raw_id("Quote:999999")]},
    ),
    (f"{{ competitors {{ {CONNECTION} nodes {{ id name website }} }} }}", {}),
    ("{ competitors(first: 1) { edges { cursor } pageInfo { endCursor hasNextPage } } }", {}),
    (scenarios.R1, {"id": "O1"}),
    (scenarios.R2, {}),
    (
        """fragment Q on Quote { id state isOpen }
           fragment O on Opportunity { id name quotes { nodes { ...Q } } }
           query($skip: Boolean!, $include: Boolean!) {
             a: opportunities(first: 3) { nodes { ...O b: name @skip(if: $skip)
               c: openQuoteCount @include(if: $include) } }
             b: opportunities(first: 2, orderBy: {field: NAME, direction: ASC}) {
               nodes { ... on Opportunity { name } } } }""",
        {"skip": True, "include": True},
    ),
    ("{ opportunities(first: 500) { totalCount } }", {}),  # PAGE_SIZE_EXCEEDED: plain path
    ('{ opportunities(after: "bad") { totalCount } }', {}),  # BAD_CURSOR: plain path
    ('{ opportunities(filter: {nameContains: ""}) { totalCount } }', {}),
    ('{ opportunities(filter: {customerName: "o_%/"}) { totalCount } }', {}),
    (f"{{ quotes {{ {QUOTE_CONNECTION} nodes {{ {EVERY_QUOTE_FIELD} }} }} }}", {}),
    (
        f"""query($first: Int, $last: Int, $after: String, $before: String,
                 $filter: QuoteListFilter) {{
             quotes(first: $first, last: $last, after: $after, before: $before,
                    filter: $filter) {{ {QUOTE_CONNECTION} }} }}""",
        {"first": 2, "filter": {"state": ["WON", "CLOSED"]}},
    ),
    (
        f"""query($id: ID) {{ quotes(last: 2, filter: {{opportunityId: $id, isOpen: true}}) {{
             {QUOTE_CONNECTION} }} }}""",
        {"id": "O2"},
    ),
    ('{ quotes(filter: {opportunityId: "nonsense"}) { totalCount } }', {}),
    ('{ quotes(after: "bad") { totalCount } }', {}),  # BAD_CURSOR: plain path
    (f"query($id: ID!) {{ contract(id: $id) {{ {EVERY_CONTRACT_FIELD} }} }}", {"id": "PC2"}),
    (f"query($id: ID!) {{ contract(id: $id) {{ {EVERY_CONTRACT_FIELD} }} }}", {"id": "PC1"}),
    ("query($id: ID!) { contract(id: $id) { id } }", {"id": "Q1"}),  # a quote's id: null
    (
        f"""query($ids: [ID!]!) {{ nodes(ids: $ids) {{ __typename id
              ... on ProjectContract {{ contractNumber }}
              ... on ContractLine {{ {EVERY_LINE_FIELD} }} }} }}""",
        {"ids": ["PC1", "PC2", "CL1", "CL3", raw_id("ProjectContract:999999")]},
    ),
    (
        """query($id: ID!, $first: Int, $after: String) { contract(id: $id) {
             lines(first: $first, after: $after) {
               totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
               edges { cursor node { id amount } } } } }""",
        {"id": "PC2", "first": 1, "after": "aWQ6MQ=="},  # after line 1,
    ),
    (f"{{ contracts {{ {CONTRACT_CONNECTION} nodes {{ {EVERY_CONTRACT_FIELD} }} }} }}", {}),
    (
        f"""query($first: Int, $last: Int, $after: String, $before: String,
                 $filter: ContractFilter) {{
             contracts(first: $first, last: $last, after: $after, before: $before,
                       filter: $filter) {{ {CONTRACT_CONNECTION} }} }}""",
        {"last": 1, "filter": {"state": ["DRAFT"]}},
    ),
    (
        f"""query($id: ID) {{ contracts(first: 1, filter: {{opportunityId: $id}}) {{
             {CONTRACT_CONNECTION} }} }}""",
        {"id": "O1"},
    ),
    ('{ contracts(filter: {opportunityId: "nonsense"}) { totalCount } }', {}),
    (
        """{ quotes(first: 50) { nodes { id state contract { id contractNumber
             opportunity { id } } } }
           opportunities(first: 50) { nodes { id contracts(first: 2) {
             totalCount pageInfo { hasNextPage endCursor } nodes { id lines { totalCount } } } } }
        }""",
        {},
    ),
]
for field in ORDER_FIELDS:
    for direction in ("ASC", "DESC"):
        for filter_ in (
            "{}",
            "{state: [OPEN, WON]}",
            '{customerName: "in"}',
            '{nameContains: "SYSTEM"}',
            "{hasOpenQuotes: true}",
            "{hasOpenQuotes: false}",
            '{customer: "Tie Ltd"}',
            "{outcome: LOST}",
            '{actualCloseDateFrom: "2020-01-01", actualCloseDateTo: "2035-12-31"}',
        ):
            HAND_WRITTEN.append(
                (
                    f"""query($first: Int, $last: Int, $after: String, $before: String) {{
                      opportunities(first: $first, last: $last, after: $after, before: $before,
                                    filter: {filter_},
                                    orderBy: {{field: {field}, direction: {direction}}}) {{
                        {CONNECTION} }} }}""",
                    {"first": 3},
                )
            )

# Short ids in the documents above, resolved to the seed's real global ids.
QUOTES_OF = """query($id: ID) {
  quotes(first: 5, filter: {opportunityId: $id}) { nodes { id opportunity { id } } } }"""

SHORT_IDS = {
    "O": "Opportunity",
    "Q": "Quote",
    "C": "OpportunityClose",
    "OC": "OpportunityClose",
    "QC": "QuoteClose",
    "K": "Competitor",
    "PC": "ProjectContract",
    "CL": "ContractLine",
}


def _real(value: Any) -> Any:
    if isinstance(value, list):
        return [_real(v) for v in value]
    if isinstance(value, str):
        for prefix in sorted(SHORT_IDS, key=len, reverse=True):
            rest = value[len(prefix) :]
            if value.startswith(prefix) and rest.isdigit():
                return raw_id(f"{SHORT_IDS[prefix]}:{rest}")
    return value


@dataclasses.dataclass
class Pair:
    compiled: httpx.AsyncClient
    plain: httpx.AsyncClient
    # PostgreSQL: the compiled path with its statements on psycopg (COMPILED_READS_DRIVER),
    # beside ``compiled``'s on asyncpg (the default).
    on_psycopg: httpx.AsyncClient | None = None
    on_asyncpg: DriverReads | None = None

    async def compare(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send the read to every app, and to each compiling one twice: the second time a
        compiled query takes the fast lane (fast_lane.py). All the answers must agree."""
        body = {"query": query, "variables": variables or {}}
        failed = compiled_reads.STATS.failed
        plain = await self.plain.post("/graphql", json=body, headers=headers)
        clients = [self.compiled] + ([self.on_psycopg] if self.on_psycopg is not None else [])
        for client in clients:
            for _ in range(2):
                compiled = await client.post("/graphql", json=body, headers=headers)
                assert _answer(compiled) == _answer(plain), query
        assert compiled_reads.STATS.failed == failed, f"the compiled path failed on {query}"
        return compiled.json()

    def compiling_apps(self) -> int:
        return 1 if self.on_psycopg is None else 2

    def asyncpg_served(self) -> int:
        """Compiled statements asyncpg answered (none on SQLite)."""
        return 0 if self.on_asyncpg is None else self.on_asyncpg.served


def _answer(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (but the request id) and body bytes."""
    headers = {k: v for k, v in response.headers.items() if k != "x-request-id"}
    return response.status_code, headers, response.content


@pytest.fixture
async def pair(settings: Settings) -> AsyncIterator[Pair]:
    compiled_app = create_app(settings)
    plain_app = create_app(dataclasses.replace(settings, compiled_reads=False))
    apps = [compiled_app, plain_app]
    if settings.compiled_reads_on_asyncpg:
        apps.append(create_app(dataclasses.replace(settings, compiled_reads_driver="psycopg")))
    await seed_demo(compiled_app.state.engine)
    # Ties and nulls for every ordering: same names, same close dates, no close date.
    for index in range(6):
        await services.create_opportunity(
            UnitOfWork(compiled_app.state.engine, actor="tester"),
            name="Same name",
            customer_name="Tie Ltd",
            currency_code="EUR",
            estimated_close_date=None if index % 2 else date(2027, 1, 1),
            estimated_revenue=None if index % 3 == 2 else Decimal("10" if index % 2 else "9.5"),
        )
    await _won_with_lines(compiled_app.state.engine)
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
            )
            for app in apps
        ]
        yield Pair(
            clients[0],
            clients[1],
            on_psycopg=clients[2] if len(clients) > 2 else None,
            on_asyncpg=driver_reads(reads_engine(compiled_app.state.engine)),
        )
    for app in apps:
        await app.state.engine.dispose()


async def _won_with_lines(engine: AsyncEngine) -> None:
    """A second contract, with three lines (the seed's won quote has none)."""
    uow = UnitOfWork(engine, actor="tester")
    opportunity = await services.create_opportunity(
        uow, name="Contracted", customer_name="Tie Ltd", currency_code="EUR"
    )
    assert opportunity.id is not None
    quote = await quote_services.create_quote(uow, opportunity_id=opportunity.id, name="Lines")
    assert quote.id is not None
    await add_quote_lines(engine, raw_id(f"Quote:{quote.id}"))
    await quote_services.win_quote(uow, quote_id=quote.id)


async def _history(pair: Pair) -> None:
    """Give the seed's first opportunities canceled closes, competitors and revisions."""
    opportunity = _real("O1")
    await pair.plain.post(
        "/graphql",
        json={"query": CLOSE_QUOTES, "variables": {"input": {"opportunityId": opportunity}}},
    )
    for _ in range(2):
        for mutation, variables in (
            (CLOSE_OPPORTUNITY, {"opportunityId": opportunity, "outcome": "LOST"}),
            (REOPEN_OPPORTUNITY, {"opportunityId": opportunity}),
        ):
            await pair.plain.post(
                "/graphql", json={"query": mutation, "variables": {"input": variables}}
            )


async def test_hand_written_reads_answer_alike(pair: Pair) -> None:
    await _history(pair)
    compiled = fast = 0
    for query, variables in HAND_WRITTEN:
        before, before_fast = compiled_reads.STATS.compiled, compiled_reads.STATS.fast
        await pair.compare(query, {k: _real(v) for k, v in variables.items()})
        compiled += compiled_reads.STATS.compiled - before
        fast += compiled_reads.STATS.fast - before_fast
    # Each is sent twice to each compiling app; all but the plain path's own refusals
    # compile, the second by the fast lane.
    apps = pair.compiling_apps()
    assert compiled >= 2 * apps * (len(HAND_WRITTEN) - 5)
    assert fast >= compiled // 2
    if pair.on_asyncpg is not None:  # PostgreSQL: asyncpg answered the default app's
        assert pair.asyncpg_served() >= compiled // (2 * apps)
        assert pair.on_asyncpg.unserved == 0


async def test_negotiated_and_refused_reads_answer_alike(pair: Pair) -> None:
    """The fast lane answers graphql-response+json as the normal path, and leaves refusals
    (a bad token, an idempotency key) to it."""
    query, variables = scenarios.R1, {"id": _real("O1")}
    for headers in (
        {"accept": "application/graphql-response+json"},
        {"accept": "application/json, application/graphql-response+json;q=0.9"},
        {"authorization": "Bearer not-a-token"},
        {"idempotency-key": "read-1"},
        {"content-type": "application/json; charset=utf-8"},
    ):
        await pair.compare(query, variables, headers)


async def test_a_statement_reused_for_other_ids_answers_for_each(pair: Pair) -> None:
    """The statement cache keys ID variables by type: each id still gets its own object."""
    await _history(pair)
    node = "query($id: ID!) { node(id: $id) { __typename id ... on Opportunity { name } } }"
    for key in range(1, 10):
        for query, short in (
            (scenarios.R1, "O"),
            (HAND_WRITTEN[4][0], "Q"),
            (node, "O"),
            (node, "Q"),
            (QUOTES_OF, "O"),
            (QUOTES_OF, "Q"),
        ):
            body = await pair.compare(query, {"id": _real(f"{short}{key}")})
            found = next(iter(body["data"].values()))
            if query is QUOTES_OF:
                owners = {n["opportunity"]["id"] for n in found["nodes"]}
                assert owners <= ({_real(f"O{key}")} if short == "O" else set())
                continue
            assert found is None or found["id"] == _real(f"{short}{key}")


async def test_every_page_of_every_ordering_answers_alike(pair: Pair) -> None:
    """Forward and backward through every page, every order field and direction."""
    before, requests = compiled_reads.STATS.compiled, 0
    for field in ORDER_FIELDS:
        for direction in ("ASC", "DESC"):
            for forward in (True, False):
                cursor = None
                for _ in range(10):
                    size = "first" if forward else "last"
                    place = "after" if forward else "before"
                    query = f"""query($n: Int, $c: String) {{
                      opportunities({size}: $n, {place}: $c,
                                    orderBy: {{field: {field}, direction: {direction}}}) {{
                        {CONNECTION} }} }}"""
                    body = await pair.compare(query, {"n": 3, "c": cursor})
                    requests += 1
                    info = body["data"]["opportunities"]["pageInfo"]
                    more = info["hasNextPage"] if forward else info["hasPreviousPage"]
                    if not more:
                        break
                    cursor = info["endCursor"] if forward else info["startCursor"]
                else:
                    pytest.fail("paging did not end")
    # Every page was compiled, by each compiling app.
    assert compiled_reads.STATS.compiled - before == 2 * pair.compiling_apps() * requests


@functools.cache
def generated_reads() -> list[tuple[str, dict[str, Any]]]:
    schema = graphql_schema()
    assert schema.query_type is not None
    ids = st.sampled_from(REAL_IDS).map(lambda v: graphql.StringValueNode(value=v))
    scalars = {
        "ID": ids,
        "Int": st.integers(-1, 12).map(lambda v: graphql.IntValueNode(value=str(v))),
        "String": st.sampled_from(["", "a", "in", "Contoso", "%", "_", "é"]).map(
            lambda v: graphql.StringValueNode(value=v)
        ),
    }
    strategy = st.one_of(
        [
            queries(schema, fields=[name], custom_scalars=scalars, print_ast=_as_document)
            for name in schema.query_type.fields
        ]
    )
    documents: list[graphql.DocumentNode] = []

    @hypothesis_settings(
        max_examples=GENERATED,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(document: Any) -> None:
        documents.append(document)

    collect()
    reads: list[tuple[str, dict[str, Any]]] = []
    for document in documents:
        reads.append((graphql.print_ast(document), {}))
        operation, _ = hoisted(document, schema)
        reads.append((operation.query, operation.variables or {}))
    return reads


def readme_reads() -> list[tuple[str, dict[str, Any]]]:
    """The README's queries, with the variables of the JSON block after each, if any."""
    blocks = re.findall(r"```(graphql|json)\n(.*?)```", README.read_text(), re.DOTALL)
    reads = []
    for index, (kind, block) in enumerate(blocks):
        if kind != "graphql" or not block.lstrip().startswith(("query", "{")):
            continue
        following = blocks[index + 1] if index + 1 < len(blocks) else ("", "")
        variables = json.loads(following[1]) if following[0] == "json" else {}
        reads.append((block, {} if "data" in variables or "errors" in variables else variables))
    return reads


async def test_generated_reads_answer_alike(pair: Pair) -> None:
    await _history(pair)
    before = compiled_reads.STATS.compiled
    for query, variables in generated_reads():
        await pair.compare(query, variables)
    compiled = compiled_reads.STATS.compiled - before
    assert compiled >= len(generated_reads()) * 0.6, compiled
    if pair.on_asyncpg is not None:  # asyncpg ran every statement of the default app
        assert pair.on_asyncpg.unserved == 0
        assert pair.asyncpg_served() >= len(generated_reads()) * 0.25


async def test_introspection_beside_data_is_left_to_the_plain_path_without_a_failure(
    pair: Pair,
) -> None:
    """Regression: a root ``__type`` made the compiler fail (a KeyError, logged as a defect)."""
    before = compiled_reads.STATS.failed
    for query in (
        '{ __type(name: "ProjectContract") { name } opportunities(first: 1) { totalCount } }',
        "{ __schema { queryType { name } } quotes(first: 1) { totalCount } }",
    ):
        await pair.compare(query)
    assert compiled_reads.STATS.failed == before


async def test_the_readmes_reads_answer_alike(pair: Pair) -> None:
    reads = readme_reads()
    assert reads, "the README shows no query"
    await _history(pair)
    for query, variables in reads:
        await pair.compare(query, variables)


async def test_a_dead_pooled_connection_costs_a_compiled_read_no_error(settings: Settings) -> None:
    """The pool does not ping at checkout: a connection the server dropped is retried once."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite connections do not die under the pool")
    app = create_app(settings)
    await seed_demo(app.state.engine)
    body = {"query": scenarios.R1, "variables": {"id": _real("O1")}}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        first = (await http.post("/graphql", json=body)).json()
        assert first["data"]["opportunity"] is not None
        killer = create_async_engine(settings.database_url, isolation_level="AUTOCOMMIT")
        async with killer.connect() as connection:
            killed = await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        await killer.dispose()
        assert killed >= 1
        before, fast_before = compiled_reads.STATS.compiled, compiled_reads.STATS.fast
        second = (await http.post("/graphql", json=body)).json()
        assert second == first
        assert compiled_reads.STATS.compiled == before + 1
        # The fast lane answered it (on psycopg's cursor: nothing listens to statements here),
        # on the fresh connection it retried on.
        assert compiled_reads.STATS.fast == fast_before + 1
    await app.state.engine.dispose()
