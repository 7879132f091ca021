"""Builds the strawberry schema with its protective limits and caches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from graphql import ASTValidationRule, GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from gql_service.graphql.errors import ERROR_TYPES
from gql_service.graphql.extensions import MaskUnexpectedErrors
from gql_service.graphql.mutations import Mutation
from gql_service.graphql.query import Query
from gql_service.graphql.types import Competitor, Opportunity, OpportunityClose, Quote, QuoteClose
from gql_service.settings import Settings


class Schema(strawberry.Schema):
    """Logs nothing by itself: unexpected errors are logged, with request id, when masked."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        return None


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    # Rule classes are built once: the validation cache keys on them, so building them per
    # request would silently defeat it.
    rules: list[type[ASTValidationRule]] = [
        depth_rule(settings.max_query_depth, should_ignore=None),
        alias_rule(settings.max_aliases),
    ]
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        MaskUnexpectedErrors,
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: AddValidationRules(rules),
        ParserCache,
        ValidationCache,
    ]
    types: list[Any] = [Opportunity, Quote, OpportunityClose, QuoteClose, Competitor, *ERROR_TYPES]
    return Schema(
        query=Query,
        mutation=Mutation,
        types=types,
        extensions=extensions,
        # Not sort_schema=True: strawberry 0.341 then resolves union members against the
        # unsorted type objects and refuses every typed error ("not in the union").
        config=StrawberryConfig(),
    )
