"""Builds the strawberry schema with its protective limits and caches."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import strawberry
from graphql import GraphQLError
from graphql.utilities.print_schema import print_schema_definition
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.types.base_scalars import (
    DateDefinition,
    DateTimeDefinition,
    DecimalDefinition,
)
from strawberry.types import ExecutionContext

from gql_service.graphql.admission import Gate, admission
from gql_service.graphql.authorization import AuthorizeOperation
from gql_service.graphql.compiled_reads import compiled_reads
from gql_service.graphql.compiler import Compilers
from gql_service.graphql.contract_types import ContractLine, ProjectContract
from gql_service.graphql.errors import ERROR_TYPES
from gql_service.graphql.extensions import LogOperations, MaskUnexpectedErrors
from gql_service.graphql.fast_writes import KnownWrites, remember_writes
from gql_service.graphql.known_reads import KnownReads
from gql_service.graphql.line_mutations import LineMutation
from gql_service.graphql.mutations import Mutation
from gql_service.graphql.query import Query
from gql_service.graphql.subscription import Subscription
from gql_service.graphql.types import (
    Competitor,
    Opportunity,
    OpportunityClose,
    OpportunityLine,
    Quote,
    QuoteClose,
    QuoteLine,
)
from gql_service.settings import Settings

# Output is RFC 3339's date-time and full-date (a profile of ISO 8601).
RFC_3339 = "https://datatracker.ietf.org/doc/html/rfc3339#section-5.6"
if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

# The built-in scalars, described as this API uses them.
SCALARS: dict[object, Any] = {
    decimal.Decimal: dataclasses.replace(
        DecimalDefinition,
        description='An exact decimal number as a string, e.g. "1250000.50". Money has at most '
        "4 fractional digits and comes back with exactly 4. Never a float.",
    ),
    datetime.date: dataclasses.replace(
        DateDefinition,
        description="A calendar date, ISO 8601: 2026-11-23.",
        specified_by_url=RFC_3339,
    ),
    datetime.datetime: dataclasses.replace(
        DateTimeDefinition,
        description="A UTC timestamp, ISO 8601 with offset: 2026-11-23T20:35:29.123456+00:00.",
        specified_by_url=RFC_3339,
    ),
}

# What a client learns first (GraphiQL's Docs, `__schema { description }`, schema.graphql).
DESCRIPTION = """\
Closes project sales opportunities and their quotes, modelled on the "Close an opportunity" \
feature of Dynamics 365 Project Operations. An opportunity collects quotes and closes as WON or \
LOST with a status reason; it cannot close while any of its quotes is open (DRAFT or ACTIVE).

Authentication: send `Authorization: Bearer <API key or JWT>`. Queries need the scope \
`opportunities:read`, mutations `opportunities:write`; development mode also answers requests \
without a token.

Errors are data: a mutation that breaks a business rule or gets bad input answers with its \
payload's `errors` list, each a typed error implementing `UserError` (`code`, `message`, \
`field`), and changes nothing. Top-level `errors` are for malformed or refused requests and \
outages, each with `extensions.code`. Ids are opaque global ids (`node(id:)`); lists are \
cursor connections."""


@strawberry.type(
    name="Mutation", description="Changes to opportunities, quotes, their lines and competitors."
)
class MutationRoot(Mutation, LineMutation):
    """Every mutation: the Mutation type's own, then the lines' (line_mutations.py)."""


class Schema(strawberry.Schema):
    """Logs nothing by itself: unexpected errors are logged, with request id, when masked.

    It carries the admission gate, the read compiler and the registers of compiled queries
    and of plain mutations, which the HTTP endpoint's fast lane shares with the extensions.
    """

    gate: Gate
    compilers: Compilers
    known_reads: KnownReads
    known_writes: KnownWrites
    # The operation spans' tracer when tracing is on (the fast lane makes them too).
    tracer: Tracer | None

    def as_str(self) -> str:
        # strawberry's printer leaves the schema description out; graphql-core's prints it.
        definition = print_schema_definition(self._schema)
        text = super().as_str()
        return f"{definition}\n\n{text}" if definition else text

    __str__ = as_str

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        return None


def build_schema(
    settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None
) -> Schema:
    settings = settings or Settings()
    gate, compilers, known = Gate(settings), Compilers(settings), KnownReads()
    known_writes = KnownWrites()
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        LogOperations,
        MaskUnexpectedErrors,
        # Parsing (with its caches and limits), validation and cost: see admission.py.
        admission(gate),
        AuthorizeOperation,  # after admission: its refusal replaces validation's result
        # Last: it answers admitted, authorized queries before execution.
        compiled_reads(compilers, known),
        remember_writes(known_writes),
    ]
    tracer = None
    if settings.metrics:
        from gql_service.graphql.observability import RecordMetrics

        extensions.insert(0, RecordMetrics)  # first: it sees the final, masked errors
    if tracer_provider is not None:
        from gql_service.graphql.observability import tracing_extension
        from gql_service.tracing import graphql_tracer

        tracer = graphql_tracer(tracer_provider)
        extensions.insert(0, tracing_extension(tracer))  # first: its span holds the others
    types: list[Any] = [
        Opportunity,
        Quote,
        OpportunityClose,
        QuoteClose,
        Competitor,
        ProjectContract,
        ContractLine,
        QuoteLine,
        OpportunityLine,
        *ERROR_TYPES,
    ]
    schema = Schema(
        query=Query,
        mutation=MutationRoot,
        subscription=Subscription,
        types=types,
        extensions=extensions,
        # Not sort_schema=True: strawberry 0.341 then resolves union members against the
        # unsorted type objects and refuses every typed error ("not in the union").
        config=StrawberryConfig(),
        scalar_overrides=SCALARS,
    )
    schema._schema.description = DESCRIPTION
    schema.gate, schema.compilers, schema.known_reads = gate, compilers, known
    schema.known_writes = known_writes
    schema.tracer = tracer
    return schema
