"""Schema extensions: a log line per operation, and masking of unexpected errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

log = logging.getLogger("gql_service.errors")
operations_log = logging.getLogger("gql_service.operations")

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


class LogOperations(SchemaExtension):
    """One line per operation: request id, name, type, duration and error count."""

    def on_operation(self) -> Iterator[None]:
        start = time.perf_counter()
        yield
        if not operations_log.isEnabledFor(logging.INFO):
            return
        context = self.execution_context
        try:
            kind = context.operation_type.value
        except Exception:  # pragma: no cover - no operation to name; logging must not fail
            kind = "unknown"
        errors = getattr(context.result, "errors", None) or []
        operations_log.info(
            "request=%s operation=%s type=%s duration_ms=%.1f errors=%d",
            _request_id(context.context),
            context.operation_name or "-",
            kind,
            (time.perf_counter() - start) * 1000,
            len(errors),
        )
