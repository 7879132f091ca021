"""The GraphQL HTTP endpoint: context, JSON encoding and GraphQL-over-HTTP negotiation."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from functools import cached_property
from typing import Any

import orjson
from cross_web import HTTPException
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema import BaseSchema
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from gql_service import metrics
from gql_service.announcements import Broker
from gql_service.graphiql import page_html
from gql_service.graphql.compiled_reads import register_sqlite_functions
from gql_service.graphql.context import Context, new_request_id
from gql_service.graphql.fast_lane import LANE_TRIED, FastLane
from gql_service.graphql.idempotency import IdempotentRequests
from gql_service.graphql.localized import LocalizedHTTPError, http_message, localized
from gql_service.graphql.negotiation import GRAPHQL_RESPONSE_JSON, JSON, media_type
from gql_service.graphql.persisted import PersistedQueries, PersistedQueryError, Resolved
from gql_service.graphql.request_body import (
    RequestData,
    decode_json,
    decoded_request,
    request_data,
)
from gql_service.graphql.schema import Schema
from gql_service.graphql.websocket import TransportWSHandler, WebSocketAdapter
from gql_service.languages import language_of
from gql_service.limits import refusal
from gql_service.messages import msg
from gql_service.persisted_queries import PersistedQueryStore, TrustedDocuments
from gql_service.principal import NOBODY, Authenticator
from gql_service.queries import Reader
from gql_service.read_session import ReadSession
from gql_service.security_headers import graphiql_policy
from gql_service.settings import Settings

REQUEST_ID_HEADER = "x-request-id"

# Top-level error codes that decide the HTTP status whatever the negotiated media type: the
# request was well formed, but the caller or the service is not in a state to answer it.
STATUS_BY_CODE = {"UNAUTHENTICATED": 401, "FORBIDDEN": 403, "SERVICE_UNAVAILABLE": 503}

# Codes for requests refused before GraphQL sees them (Apollo's BAD_REQUEST for malformed ones).
CODE_BY_STATUS = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


class GraphQLEndpoint(GraphQL[Context, None]):
    """strawberry's ASGI view, with our context and the GraphQL-over-HTTP response rules.

    A client that accepts ``application/graphql-response+json`` gets that media type, and a
    request that fails before execution (parse or validation error) gets status 400 with no
    ``data`` entry; everyone else gets ``application/json`` with status 200.

    With a ``broker``, WebSockets on the same path speak graphql-transport-ws (websocket.py).
    """

    graphql_transport_ws_handler_class = TransportWSHandler
    websocket_adapter_class = WebSocketAdapter

    def __init__(
        self,
        schema: BaseSchema,
        *,
        settings: Settings,
        engine: AsyncEngine,
        authenticator: Authenticator,
        broker: Broker | None = None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(
                milliseconds=settings.connection_init_timeout_ms
            ),
            max_subscriptions_per_connection=None,  # counted, with a code, by the handler
            allowed_origins=settings.cors_origins,
        )
        self.broker = broker
        self.websockets = 0
        self.settings = settings
        self.engine = engine
        self.authenticator = authenticator
        register_sqlite_functions(engine)
        # Known operations skip strawberry's per-request machinery (fast_lane.py).
        self.fast_lane = (
            FastLane(schema, settings, authenticator, engine, broker)
            if (settings.compiled_reads or settings.fast_writes) and isinstance(schema, Schema)
            else None
        )
        self.persisted = PersistedQueries(
            PersistedQueryStore(engine, cache_size=settings.persisted_query_cache_size),
            apq_enabled=settings.apq_enabled,
            trusted=(
                TrustedDocuments.load(settings.trusted_documents)
                if settings.trusted_documents
                else None
            ),
        )
        self.idempotency = IdempotentRequests(engine, settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._serve_websocket(scope, receive, send)
            return
        if scope["type"] != "http":  # pragma: no cover - Starlette routes only these two here
            await super().__call__(scope, receive, send)
            return
        request_id = new_request_id()
        reads = ReadSession(self.engine)
        scope.setdefault("state", {}).update(request_id=request_id, reads=reads)
        try:
            await self._respond(scope, receive, send, request_id)
        finally:
            # Also on errors, cancellation and client disconnects: no connection leaks.
            await reads.close()

    async def _serve_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive=receive, send=send)
        if self.websockets >= self.settings.max_websocket_connections:
            # Refused before the handshake completes: HTTP 503, as for too many requests.
            if "websocket.http.response" not in scope.get("extensions", {}):
                await websocket.close(code=1013)  # pragma: no cover - uvicorn has the extension
                return
            await websocket.send_denial_response(
                refusal(
                    503,
                    "SERVICE_UNAVAILABLE",
                    msg("Too many WebSocket connections; retry shortly."),
                    language=language_of(scope),
                    headers={"retry-after": "1"},
                )
            )
            return
        self.websockets += 1
        try:
            await self.run(websocket)
        finally:
            self.websockets -= 1

    async def _respond(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        request = Request(scope, receive)
        response = await self._response(request, scope, request_id)
        if not isinstance(response, StreamingResponse):
            # The answer is complete: its connection goes back to the pool before the client
            # reads it, which a slow reader could otherwise make last (a stream still reads).
            await scope["state"]["reads"].close()
        await response(scope, receive, send)

    async def _response(self, request: Request, scope: Scope, request_id: str) -> Response:
        try:
            response = await self._fast_lane(request, scope, request_id)
            if response is None:
                response = await self.run(request)
        except HTTPException as exc:
            # A malformed request still gets a GraphQL error with a code, never plain text.
            code = CODE_BY_STATUS.get(exc.status_code, "BAD_REQUEST")
            metrics.note_refusal([code])
            response = refusal(
                exc.status_code,
                code,
                http_message(exc),
                language=language_of(scope),
                headers={REQUEST_ID_HEADER: request_id},
            )
            if exc.status_code == 405:
                response.headers["allow"] = "POST"
            _negotiate(request, response)
        return response

    async def _fast_lane(self, request: Request, scope: Scope, request_id: str) -> Response | None:
        """The fast lane's answer, unless it does not know the operation or the front door
        (front_door.py) tried it already."""
        lane, state = self.fast_lane, scope["state"]
        if lane is None or request.method != "POST" or state.get(LANE_TRIED):
            return None
        if not lane.accepts(request.headers):
            return None
        answer = await lane.answer(
            request.headers, await request.body(), state["reads"], request_id, state
        )
        if answer is None:
            return None
        return Response(
            answer.body, media_type=answer.media_type, headers={REQUEST_ID_HEADER: request_id}
        )

    def parse_json(self, data: str | bytes) -> Any:
        return decode_json(data, max_depth=self.settings.max_json_depth)

    async def parse_http_body(self, request: Any) -> GraphQLRequestData:
        if request.method == "GET":
            params = self.parse_query_params(request.query_params)
            for name in ("variables", "extensions"):
                if params.get(name) == "":
                    params[name] = None
            return request_data(params)
        content_type, _ = parse_content_type(request.content_type or "")
        if content_type != JSON:
            raise LocalizedHTTPError(
                400,
                msg("Send the operation as {media_type} (Content-Type header).", media_type=JSON),
            )
        body = await request.get_body()
        return decoded_request(body, max_depth=self.settings.max_json_depth)

    def should_render_graphql_ide(self, request: Any) -> bool:
        # Apollo Client sends hash-only persisted queries as GET with "Accept: */*".
        return "extensions" not in request.query_params and super().should_render_graphql_ide(
            request
        )

    @cached_property
    def graphql_ide_html(self) -> str:
        # Ours, not strawberry's: its files come from this service, not from a CDN.
        return page_html()

    @cached_property
    def graphiql_policy(self) -> str:
        return graphiql_policy(self.graphql_ide_html)

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(
            self.graphql_ide_html, headers={"content-security-policy": self.graphiql_policy}
        )

    async def execute_single(  # type: ignore[override]
        self, **kwargs: Any
    ) -> ExecutionResult:
        data: GraphQLRequestData = kwargs["request_data"]
        try:
            resolved = await self.persisted.resolve(
                data.query,
                data.extensions,
                data.document_id if isinstance(data, RequestData) else None,
            )
        except PersistedQueryError as exc:
            return ExecutionResult(data=None, errors=[exc.graphql_error()])
        kwargs["request_data"] = dataclasses.replace(data, query=resolved.query)
        try:
            result = await super().execute_single(**kwargs)
        except HTTPException as exc:
            if isinstance(exc.__cause__, InvalidOperationTypeError):
                # GraphQL over HTTP: a mutation over GET is 405 Method Not Allowed.
                raise HTTPException(405, exc.reason) from exc
            raise
        except RecursionError as exc:
            raise LocalizedHTTPError(400, msg("The document is nested too deeply.")) from exc
        await self._register(resolved, result)
        return result

    async def _register(self, resolved: Resolved, result: ExecutionResult) -> None:
        if resolved.register is None or resolved.query is None:
            return
        if result.data is None and all(e.path is None for e in result.errors or ()):
            return  # it did not parse or validate: not worth keeping
        await self.persisted.register(resolved.register, resolved.query)

    async def get_context(self, request: Any, response: Any) -> Context:
        if isinstance(request, WebSocket):
            # The principal is set by connection_init; each operation gets its own reads.
            connection_reads = ReadSession(self.engine)
            return Context(
                request=request,  # type: ignore[arg-type]
                response=Response(),
                settings=self.settings,
                engine=self.engine,
                reads=connection_reads,
                reader=Reader(connection_reads),
                principal=NOBODY,
                request_id=new_request_id(),
                language=language_of(request.scope),
                broker=self.broker,
            )
        request_id = request.state.request_id
        response.headers[REQUEST_ID_HEADER] = request_id
        principal, failure = NOBODY, None
        try:
            principal = await self.authenticator.authenticate(request.headers)
        except Exception as exc:  # answered, before any resolver, by the authorization extension
            failure = exc
        reads: ReadSession = request.state.reads
        return Context(
            request=request,
            response=response,
            settings=self.settings,
            engine=self.engine,
            reads=reads,
            reader=Reader(reads),
            principal=principal,
            request_id=request_id,
            authentication_error=failure,
            language=language_of(request.scope),
            # A refused caller claims nothing: the authorization extension answers first.
            idempotency=None if failure else await self.idempotency.claim(request, principal.name),
            broker=self.broker,
            attempted=getattr(request.state, "attempted", None),
        )

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        language = language_of(request.scope)
        if result.errors:
            result.errors = [localized(error, language) for error in result.errors]
        response = await super().process_result(request, result)
        errors = result.errors or []
        request.state.error_codes = [(e.extensions or {}).get("code") for e in errors]
        request.state.retry_after = max(
            (int((e.extensions or {}).get("retryAfter") or 0) for e in errors), default=0
        )
        if errors and result.data is None and all(e.path is None for e in errors):
            # The request failed before execution: per GraphQL over HTTP there is no data.
            request.state.request_error = True
            response.pop("data", None)
        return response

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        negotiated = media_type(request.headers)
        early = self.idempotency.refusal(request, negotiated)
        if early is not None:
            return early
        response = await super().run(request, context=context, root_value=root_value)
        if _negotiate(request, response) and getattr(request.state, "request_error", False):
            response.status_code = 400
        if isinstance(response, Response):
            codes = getattr(request.state, "error_codes", ())
            status = max((STATUS_BY_CODE.get(code, 0) for code in codes), default=0)
            if status:
                response.status_code = status
            retry_after = getattr(request.state, "retry_after", 0)
            if status == 503 and retry_after:
                response.headers["retry-after"] = str(retry_after)
            response = await self.idempotency.finish(request, response, negotiated)
        return response


def _negotiate(request: Request, response: object) -> bool:
    """Answer JSON as graphql-response+json to a client that accepts it; True if it did."""
    negotiated = media_type(request.headers) == GRAPHQL_RESPONSE_JSON
    if negotiated and isinstance(response, Response) and response.media_type == JSON:
        response.headers["content-type"] = GRAPHQL_RESPONSE_JSON
        return True
    return False
