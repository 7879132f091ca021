"""Top-level errors in the request's language: errors that carry a Message, and the last pass
that puts them into words before the response is written."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from cross_web import HTTPException
from graphql import GraphQLError, Node

from gql_service.languages import Language
from gql_service.messages import Message, msg


class LocalizedGraphQLError(GraphQLError):
    """A GraphQL error whose message is a Message: English until ``localized`` translates it.

    It is built once and may be cached (the admission gate caches refusals by query text), so
    it is never changed; a translation is a copy.
    """

    def __init__(
        self,
        message: Message,
        *,
        nodes: Node | Collection[Node] | None = None,
        path: Collection[str | int] | None = None,
        original_error: Exception | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            str(message),
            nodes=nodes,
            path=path,
            original_error=original_error,
            extensions=extensions,
        )
        self.localizable = message


class LocalizedHTTPError(HTTPException):
    """A request refused before GraphQL sees it (status and message), e.g. a malformed body."""

    def __init__(self, status_code: int, message: Message) -> None:
        super().__init__(status_code, str(message))
        self.localizable = message


# strawberry's own refusals (cross_web.HTTPException reasons), in words we can translate.
_FRAMEWORK_REASONS = {
    message.text: message
    for message in (
        msg("No GraphQL query found in the request"),
        msg("Not Found"),
        msg("Unsupported content type"),
        msg("Unable to parse request body as JSON"),
        msg("GraphQL only supports GET and POST requests."),
        msg("Can't get GraphQL operation type"),
        msg("mutations are not allowed when using GET"),
        msg("queries are not allowed when using GET"),
        msg("subscriptions are not allowed when using GET"),
        msg("subscriptions are not allowed when using POST"),
    )
}


def http_message(exc: HTTPException) -> Message:
    """The message of a refused request, translatable when it is ours or strawberry's."""
    if isinstance(exc, LocalizedHTTPError):
        return exc.localizable
    return _FRAMEWORK_REASONS.get(exc.reason) or Message(exc.reason)


def localized(error: GraphQLError, language: Language) -> GraphQLError:
    """``error`` with its message in ``language``: itself when there is nothing to translate."""
    if language is Language.EN:
        return error
    message = _message_of(error)
    if message is None:
        return error
    return GraphQLError(
        message.translate(language),
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions=error.extensions,
    )


def _message_of(error: GraphQLError) -> Message | None:
    # A resolver's error reaches the result wrapped by graphql-core, with the path added.
    for candidate in (error, error.original_error):
        if isinstance(candidate, LocalizedGraphQLError):
            return candidate.localizable
    return None
