"""Builds the strawberry schema with its protective limits and caches."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
from collections.abc import Callable
from typing import Any

import strawberry
from graphql import GraphQLError
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
from gql_service.graphql.errors import ERROR_TYPES
from gql_service.graphql.extensions import LogOperations, MaskUnexpectedErrors
from gql_service.graphql.known_reads import KnownReads
from gql_service.graphql.mutations import Mutation
from gql_service.graphql.query import Query
from gql_service.graphql.subscription import Subscription
from gql_service.graphql.types import Competitor, Opportunity, OpportunityClose, Quote, QuoteClose
from gql_service.settings import Settings

# The built-in scalars, described as this API uses them.
SCALARS: dict[object, Any] = {
    decimal.Decimal: dataclasses.replace(
        DecimalDefinition,
        description='An exact decimal number as a string, e.g. "1250000.50". Money has at most '
        "4 fractional digits and comes back with exactly 4. Never a float.",
    ),
    datetime.date: dataclasses.replace(
        DateDefinition, description="A calendar date, ISO 8601: 2026-11-23."
    ),
    datetime.datetime: dataclasses.replace(
        DateTimeDefinition,
        description="A UTC timestamp, ISO 8601 with offset: 2026-11-23T20:35:29.123456+00:00.",
    ),
}


class Schema(strawberry.Schema):
    """Logs nothing by itself: unexpected errors are logged, with request id, when masked.

    It carries the admission gate, the read compiler and the register of compiled queries,
    which the HTTP endpoint's fast lane shares with the extensions.
    """

    gate: Gate
    compilers: Compilers
    known_reads: KnownReads

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        return None


def build_schema(settings: Settings | None = None) -> Schema:
    settings = settings or Settings()
    gate, compilers, known = Gate(settings), Compilers(settings), KnownReads()
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        LogOperations,
        MaskUnexpectedErrors,
        # Parsing (with its caches and limits), validation and cost: see admission.py.
        admission(gate),
        AuthorizeOperation,  # after admission: its refusal replaces validation's result
        # Last: it answers admitted, authorized queries before execution.
        compiled_reads(compilers, known),
    ]
    types: list[Any] = [Opportunity, Quote, OpportunityClose, QuoteClose, Competitor, *ERROR_TYPES]
    schema = Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=types,
        extensions=extensions,
        # Not sort_schema=True: strawberry 0.341 then resolves union members against the
        # unsorted type objects and refuses every typed error ("not in the union").
        config=StrawberryConfig(),
        scalar_overrides=SCALARS,
    )
    schema.gate, schema.compilers, schema.known_reads = gate, compilers, known
    return schema
