"""Schema extensions: a log line per operation, and masking of unexpected errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from gql_service import outages
from gql_service.database import is_unavailable
from gql_service.graphql.localized import LocalizedGraphQLError
from gql_service.messages import msg

log = logging.getLogger("gql_service.errors")
operations_log = logging.getLogger("gql_service.operations")

MASKED_MESSAGE = msg("Unexpected error.")


def is_unexpected(error: GraphQLError) -> bool:
    """An exception raised while resolving a field that is not a deliberate GraphQL error.

    Parse, validation and variable-coercion errors carry no path, and errors raised on purpose
    are GraphQLErrors: those are the client's to see.
    """
    original = error.original_error
    return (
        error.path is not None and original is not None and not isinstance(original, GraphQLError)
    )


# Outages reported outside an HTTP request (no OutageGuard in front) share this log.
_fallback_outages = outages.OutageLog()


class MaskUnexpectedErrors(SchemaExtension):
    """Replace unexpected errors with a generic message and the request id; log the original.

    When the database could not answer, the whole result becomes one SERVICE_UNAVAILABLE error
    with a retry hint (no partial data), logged as one line without a traceback.
    """

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not getattr(result, "errors", None):
            return
        request_id = _request_id(self.execution_context.context)
        masked = []
        unavailable: GraphQLError | None = None
        for error in result.errors or []:
            if not is_unexpected(error):
                masked.append(error)
                continue
            if error.original_error is not None and is_unavailable(error.original_error):
                unavailable = unavailable or error
                continue
            log.error(
                "unexpected error [request %s] at %s",
                request_id,
                ".".join(str(p) for p in error.path or ()),
                exc_info=error.original_error,
            )
            masked.append(
                LocalizedGraphQLError(
                    MASKED_MESSAGE,
                    nodes=error.nodes,
                    path=error.path,
                    extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
                )
            )
        if unavailable is not None:
            result.data = None
            masked.insert(0, self._service_unavailable(unavailable, request_id))
        result.errors = masked

    def _service_unavailable(self, error: GraphQLError, request_id: str) -> GraphQLError:
        context = self.execution_context.context
        exc = error.original_error
        assert exc is not None
        _outage_log(context).report(exc, request_id=request_id)
        retry_after = int(context.settings.db_retry_after_seconds)
        try:
            mutation = self.execution_context.operation_type is OperationType.MUTATION
        except RuntimeError:  # pragma: no cover - an executed operation always has a type
            mutation = False
        return LocalizedGraphQLError(
            outages.message(retry_after, mutation=mutation, exc=exc),
            nodes=error.nodes,
            path=error.path,
            extensions=outages.extensions(retry_after, request_id),
        )


def _request_id(context: Any) -> str:
    return str(getattr(context, "request_id", "unknown"))


def _outage_log(context: Any) -> outages.OutageLog:
    """The app's outage log, which its OutageGuard puts in the request state."""
    state = getattr(getattr(context, "request", None), "state", None)
    found = getattr(state, "outages", None)
    return found if isinstance(found, outages.OutageLog) else _fallback_outages


def log_operation(request_id: str, name: str | None, kind: str, start: float, errors: int) -> None:
    """The operation's log line: request id, name, type, duration since ``start`` and errors."""
    if not operations_log.isEnabledFor(logging.INFO):
        return
    operations_log.info(
        "request=%s operation=%s type=%s duration_ms=%.1f errors=%d",
        request_id,
        name or "-",
        kind,
        (time.perf_counter() - start) * 1000,
        errors,
    )


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
        log_operation(
            _request_id(context.context), context.operation_name, kind, start, len(errors)
        )
