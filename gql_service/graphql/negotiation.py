"""GraphQL over HTTP media types: what a response is sent as."""

from __future__ import annotations

from starlette.requests import Request

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"


def media_type(request: Request) -> str:
    """``application/graphql-response+json`` to a client that accepts it, else JSON."""
    accepted = request.headers.get("accept", "")
    return GRAPHQL_RESPONSE_JSON if GRAPHQL_RESPONSE_JSON in accepted else JSON
