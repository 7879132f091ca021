"""GraphQL over HTTP media types: what a response is sent as."""

from __future__ import annotations

from collections.abc import Mapping

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"


def media_type(headers: Mapping[str, str]) -> str:
    """``application/graphql-response+json`` to a client whose request ``headers`` accept
    it, else JSON."""
    accepted = headers.get("accept", "")
    return GRAPHQL_RESPONSE_JSON if GRAPHQL_RESPONSE_JSON in accepted else JSON
