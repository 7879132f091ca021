"""Refuses an operation before any resolver runs unless its principal holds the needed scope.

Queries need ``opportunities:read``, mutations ``opportunities:write``. A refusal is the only
top-level error, coded UNAUTHENTICATED (no or bad token: 401) or FORBIDDEN (the scope is
missing: 403), with an RFC 6750 ``WWW-Authenticate`` header.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from gql_service.database import is_unavailable
from gql_service.graphql.context import Context
from gql_service.graphql.localized import LocalizedGraphQLError
from gql_service.messages import msg
from gql_service.principal import (
    READ_SCOPE,
    WRITE_SCOPE,
    AuthenticationError,
    SigningKeysUnavailableError,
)

log = logging.getLogger("gql_service.authentication")

REALM = 'Bearer realm="gql_service"'


def required_scope(operation_type: OperationType) -> str:
    return WRITE_SCOPE if operation_type == OperationType.MUTATION else READ_SCOPE


def _challenge(**params: str) -> str:
    return ", ".join([REALM, *(f'{k}="{v.replace(chr(34), "")}"' for k, v in params.items())])


class AuthorizeOperation(SchemaExtension):
    """Answers unauthenticated and out-of-scope operations in place of validation.

    It must come after ValidationCache among the extensions: setting the pre-execution errors
    is what stops the operation, and a later validator would overwrite them.
    """

    def on_validate(self) -> Iterator[None]:
        execution_context = self.execution_context
        context = execution_context.context
        if isinstance(context, Context):
            refusal = self._refusal(context, execution_context.operation_type)
            if refusal is not None:
                execution_context.pre_execution_errors = [refusal]
        yield

    def _refusal(self, context: Context, operation_type: OperationType) -> GraphQLError | None:
        failure = context.authentication_error
        if failure is not None:
            return _authentication_refusal(context, failure)
        scope = required_scope(operation_type)
        if context.principal.has_scope(scope):
            return None
        context.response.headers["www-authenticate"] = _challenge(
            error="insufficient_scope", scope=scope
        )
        return LocalizedGraphQLError(
            msg(
                "This operation needs the scope {scope}, which the token does not grant.",
                scope=scope,
            ),
            extensions={"code": "FORBIDDEN", "requiredScope": scope},
        )


def _authentication_refusal(context: Context, failure: Exception) -> GraphQLError:
    if isinstance(failure, AuthenticationError):
        context.response.headers["www-authenticate"] = (
            _challenge(error=failure.error, error_description=failure.description)
            if failure.error
            else REALM
        )
        return LocalizedGraphQLError(failure.message, extensions={"code": "UNAUTHENTICATED"})
    database_down = is_unavailable(failure)
    if database_down or isinstance(failure, SigningKeysUnavailableError | OSError | TimeoutError):
        outages = getattr(context.request.state, "outages", None)
        if database_down and outages is not None:
            outages.report(failure, request_id=context.request_id)
        else:
            # One line, no traceback: an outage would otherwise log one per request.
            log.warning(
                "authentication unavailable [request %s]: %s",
                context.request_id,
                type(failure).__name__,
            )
        retry_after = context.settings.db_retry_after_seconds
        context.response.headers["retry-after"] = str(retry_after)
        return LocalizedGraphQLError(
            msg("Credentials cannot be checked right now; retry shortly."),
            extensions={"code": "SERVICE_UNAVAILABLE", "retryAfter": retry_after},
        )
    log.error(
        "unexpected error while authenticating [request %s]",
        context.request_id,
        exc_info=failure,
    )
    return LocalizedGraphQLError(
        msg("Unexpected error."),
        extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": context.request_id},
    )
