"""GraphQL over WebSocket (graphql-transport-ws) on /graphql: subscriptions only.

strawberry's protocol handler, made strict where a client's bytes reach it:
- every message is checked before it is dispatched; a malformed one closes the socket with 4400
  (as the protocol says) instead of raising in the handler;
- ``connection_init`` authenticates its payload's ``Authorization`` (or ``authorization``) as
  the HTTP endpoint does the header: a refused or missing credential, or one without
  ``opportunities:read``, closes with 4403; credentials that cannot be checked now, with 1013;
- at most ``MAX_SUBSCRIPTIONS_PER_CONNECTION`` operations per connection (an ``error`` message
  coded TOO_MANY_SUBSCRIPTIONS beyond), and queries and mutations are refused (they go over
  HTTP, with its idempotency and status codes);
- each operation gets its own context: its own read connection (returned between events),
  DataLoaders and request id, so that operations on one socket never share a cache.
The documents pass the same admission gate as over HTTP: tokens, depth, aliases, cost.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncGenerator, Mapping
from contextlib import suppress
from typing import Any

import orjson
from cross_web import HTTPException
from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    CompleteMessage,
    ConnectionInitMessage,
    Message,
    SubscribeMessage,
)
from strawberry.types.execution import PreExecutionError
from strawberry.utils.aio import aclosing

from gql_service.database import is_unavailable
from gql_service.graphql.context import Context, new_request_id
from gql_service.graphql.localized import LocalizedGraphQLError, localized
from gql_service.graphql.request_body import decode_json
from gql_service.languages import negotiate
from gql_service.messages import msg
from gql_service.principal import READ_SCOPE, AuthenticationError
from gql_service.queries import Reader
from gql_service.read_session import ReadSession

log = logging.getLogger(__name__)

# A close frame's reason is at most 123 bytes; ids are kept short enough to fit in one.
MAX_CLOSE_REASON_BYTES = 123
MAX_OPERATION_ID_CHARS = 64
TRY_AGAIN_LATER = 1013
TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"


def _optional(payload: Mapping[str, Any], key: str, kind: type) -> bool:
    return payload.get(key) is None or isinstance(payload[key], kind)


def malformed(message: object) -> str | None:
    """Why a decoded message breaks the protocol, or None if it can be dispatched."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "Every message must be a JSON object with a string type."
    kind = message["type"]
    if kind in ("subscribe", "complete"):
        op_id = message.get("id")
        if not isinstance(op_id, str) or not 0 < len(op_id) <= MAX_OPERATION_ID_CHARS:
            return f"A {kind} message needs an id of 1 to {MAX_OPERATION_ID_CHARS} characters."
    if kind == "subscribe":
        payload = message.get("payload")
        if (
            not isinstance(payload, dict)
            or not isinstance(payload.get("query"), str)
            or not _optional(payload, "variables", dict)
            or not _optional(payload, "operationName", str)
            or not _optional(payload, "extensions", dict)
        ):
            return "A subscribe payload needs a query string (variables: object)."
    return None


class WebSocketAdapter(ASGIWebSocketAdapter):
    """Reads messages with the HTTP endpoint's JSON limits; closes with a reason that fits."""

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object]:
        max_depth = self.view.settings.max_json_depth  # type: ignore[attr-defined]
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                try:
                    text = await self.ws.receive_text()
                except KeyError as exc:  # a binary frame
                    raise NonTextMessageReceived from exc
                try:
                    yield decode_json(text, max_depth=max_depth)
                except HTTPException as exc:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from exc
        except WebSocketDisconnect:
            pass

    async def send_json(self, message: Mapping[str, object]) -> None:
        # Text frames, as the protocol requires (the endpoint's encoder returns bytes).
        try:
            await self.ws.send_text(orjson.dumps(message).decode())
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc

    async def close(self, code: int, reason: str) -> None:
        fitting = reason.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")
        # The client may be gone already; there is nobody left to tell.
        with suppress(RuntimeError, OSError, WebSocketDisconnect):
            await self.ws.close(code=code, reason=fitting)


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws for subscriptions, with our authentication and limits."""

    context: Context

    async def handle_message(self, message: Message) -> None:
        problem = malformed(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        if self.connection_timed_out:  # pragma: no cover - the socket is being closed
            return
        if self.connection_init_timeout_task:
            self.connection_init_timeout_task.cancel()
        payload = message.get("payload") or {}
        if not isinstance(payload, dict):
            await self.websocket.close(code=4400, reason="Invalid connection init payload")
            return
        if self.connection_init_received:
            await self.websocket.close(code=4429, reason="Too many initialisation requests")
            return
        self.connection_init_received = True
        refusal = await self._authenticate(payload)
        if refusal is not None:
            await self.websocket.close(*refusal)
            return
        await self.send_message({"type": "connection_ack"})
        self.connection_acknowledged = True

    async def _authenticate(self, payload: Mapping[str, Any]) -> tuple[int, str] | None:
        """Set the connection's principal from the payload; the close code and reason if not."""
        token = payload.get("Authorization", payload.get("authorization"))
        headers = {} if token is None else {"authorization": token}
        if token is not None and not isinstance(token, str):
            return 4403, "Forbidden"
        try:
            principal = await self.view.authenticator.authenticate(headers)  # type: ignore[attr-defined]
        except AuthenticationError:
            return 4403, "Forbidden"
        except Exception as exc:
            if not is_unavailable(exc):
                log.warning(
                    "credentials on a WebSocket could not be checked: %s", type(exc).__name__
                )
            return TRY_AGAIN_LATER, "Credentials cannot be checked right now; retry shortly."
        if not principal.has_scope(READ_SCOPE):
            return 4403, "Forbidden"
        self.context.principal = principal
        # A browser cannot set headers on a WebSocket handshake: the payload may name the
        # language instead (else the handshake's Accept-Language stands).
        language = payload.get("Accept-Language", payload.get("accept-language"))
        if isinstance(language, str):
            self.context.language = negotiate(language)
        return None

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        limit = self.context.settings.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and message["id"] not in self.operations
            and len(self.operations) >= limit
        ):
            error = localized(
                LocalizedGraphQLError(
                    msg("A connection may run at most {limit} subscriptions at once.", limit=limit),
                    extensions={"code": TOO_MANY_SUBSCRIPTIONS},
                ),
                self.context.language,
            )
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": [error.formatted]}
            )
            return
        await super().handle_subscribe(message)

    async def _handle_pre_execution_error(
        self, operation: Operation[Context, None], result: PreExecutionError
    ) -> None:
        if result.errors and isinstance(result.errors[0].original_error, InvalidOperationTypeError):
            result.errors = [
                LocalizedGraphQLError(
                    msg(
                        "Only subscriptions run over WebSocket; send queries and mutations with "
                        "POST /graphql."
                    ),
                    extensions={"code": "BAD_REQUEST"},
                )
            ]
        result.errors = [localized(error, self.context.language) for error in result.errors or ()]
        await super()._handle_pre_execution_error(operation, result)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        """strawberry's, with a context of the operation's own and subscriptions only."""
        reads = ReadSession(self.context.engine)
        context = dataclasses.replace(
            self.context, reads=reads, reader=Reader(reads), request_id=new_request_id()
        )
        try:
            result_source = await self.schema.subscribe(
                operation.query,
                variable_values=operation.variables,
                context_value=context,
                root_value=self.root_value,
                operation_name=operation.operation_name,
            )
            async with aclosing(result_source):
                await self._send_result_stream(operation, result_source)
            await operation.send_operation_message(
                CompleteMessage(id=operation.id, type="complete")
            )
        except _OperationStreamClosed:
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            await self.handle_task_exception(error)
            with suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
        finally:
            await reads.close()
