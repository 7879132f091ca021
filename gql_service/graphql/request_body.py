"""Reading a GraphQL-over-HTTP request: its JSON or query parameters, checked member by member.

Anything malformed is an ``HTTPException(400)`` (a LocalizedHTTPError) with a message for the
client; the endpoint answers it as a GraphQL error with ``extensions.code`` BAD_REQUEST.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson
from strawberry.http import GraphQLRequestData

from gql_service.graphql.localized import LocalizedHTTPError
from gql_service.messages import Message, msg

BAD_REQUEST = 400
# Built once: request_data runs on every request, the fast lane's included.
_STRING = msg("a string")
_OBJECT = msg("an object")


@dataclass
class RequestData(GraphQLRequestData):
    """strawberry's request data, plus the trusted document id a client may send instead."""

    document_id: str | None = None


def decode_json(data: str | bytes, *, max_depth: int) -> Any:
    """Parse JSON text (strict UTF-8, no lone surrogates) nested at most ``max_depth`` deep."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise LocalizedHTTPError(
            BAD_REQUEST, msg("The request body is not valid JSON in UTF-8.")
        ) from exc
    # Nothing nests deeper than its count of opening brackets (those in strings included):
    # counting them is a scan in C, walking the value is not.
    raw = data.encode() if isinstance(data, str) else data
    if raw.count(b"{") + raw.count(b"[") > max_depth and nesting_depth(value) > max_depth:
        raise LocalizedHTTPError(
            BAD_REQUEST, msg("JSON is nested more than {maximum} levels deep.", maximum=max_depth)
        )
    return value


def nesting_depth(value: object) -> int:
    """How deeply lists and objects nest in a decoded JSON value, without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


# The request body that this request's task decoded last, and what it held: the fast lane
# decodes it first, and the normal path, which answers whatever the lane leaves, reads the
# same bytes (Starlette keeps them on the request) without decoding them again.
_DECODED: ContextVar[tuple[bytes, RequestData] | None] = ContextVar("decoded_body", default=None)


def decoded_request(body: bytes, *, max_depth: int) -> RequestData:
    """``request_data(decode_json(body))``, worked out once per body object per task."""
    known = _DECODED.get()
    if known is not None and known[0] is body:
        return known[1]
    data = request_data(decode_json(body, max_depth=max_depth))
    _DECODED.set((body, data))
    return data


def request_data(data: object) -> RequestData:
    """The operation in a decoded body or query string; one JSON object, never a batch."""
    if isinstance(data, list):
        raise LocalizedHTTPError(
            BAD_REQUEST, msg("Batching is not enabled: send one operation as a JSON object.")
        )
    if not isinstance(data, Mapping):
        raise LocalizedHTTPError(BAD_REQUEST, msg("The request body must be a JSON object."))
    return RequestData(
        query=_member(data, "query", str, _STRING),
        variables=_member(data, "variables", dict, _OBJECT),
        operation_name=_member(data, "operationName", str, _STRING),
        extensions=_member(data, "extensions", dict, _OBJECT),
        document_id=_member(data, "documentId", str, _STRING),
    )


def _member(data: Mapping[str, Any], name: str, kind: type, described: Message) -> Any:
    value = data.get(name)
    if value is None or isinstance(value, kind):
        return value
    raise LocalizedHTTPError(
        BAD_REQUEST,
        msg("`{name}` must be {kind} or null, if provided.", name=name, kind=described),
    )
