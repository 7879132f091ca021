"""Schema extensions: mask unexpected errors, logging them with the request id."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

log = logging.getLogger("gql_service.errors")

MASKED_MESSAGE = "Unexpected error."


def is_unexpected(error: GraphQLError) -> bool:
    """An exception raised while resolving a field that is not a deliberate GraphQL error.

    Parse, validation and variable-coercion errors carry no path, and errors raised on purpose
    are GraphQLErrors: those are the client's to see.
    """
    original = error.original_error
    return (
        error.path is not None and original is not None and not isinstance(original, GraphQLError)
    )


class MaskUnexpectedErrors(SchemaExtension):
    """Replace unexpected errors with a generic message and the request id; log the original."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not getattr(result, "errors", None):
            return
        request_id = _request_id(self.execution_context.context)
        masked = []
        for error in result.errors or []:
            if not is_unexpected(error):
                masked.append(error)
                continue
            log.error(
                "unexpected error [request %s] at %s",
                request_id,
                ".".join(str(p) for p in error.path or ()),
                exc_info=error.original_error,
            )
            masked.append(
                GraphQLError(
                    MASKED_MESSAGE,
                    nodes=error.nodes,
                    path=error.path,
                    extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
                )
            )
        result.errors = masked


def _request_id(context: Any) -> str:
    return str(getattr(context, "request_id", "unknown"))
