"""The GraphQL HTTP endpoint: context, JSON encoding and GraphQL-over-HTTP negotiation."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from cross_web import HTTPException
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema import BaseSchema
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from gql_service.graphql.context import Context
from gql_service.graphql.idempotency import IdempotentRequests
from gql_service.principal import principal_for
from gql_service.queries import Reader
from gql_service.settings import Settings

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
REQUEST_ID_HEADER = "x-request-id"

# Top-level error codes that decide the HTTP status whatever the negotiated media type: the
# request was well formed, but the caller or the service is not in a state to answer it.
STATUS_BY_CODE = {"UNAUTHENTICATED": 401, "FORBIDDEN": 403, "SERVICE_UNAVAILABLE": 503}


class GraphQLEndpoint(GraphQL[Context, None]):
    """strawberry's ASGI view, with our context and the GraphQL-over-HTTP response rules.

    A client that accepts ``application/graphql-response+json`` gets that media type, and a
    request that fails before execution (parse or validation error) gets status 400 with no
    ``data`` entry; everyone else gets ``application/json`` with status 200.
    """

    def __init__(self, schema: BaseSchema, *, settings: Settings, engine: AsyncEngine) -> None:
        super().__init__(schema, graphql_ide="graphiql" if settings.graphiql else None)
        self.settings = settings
        self.engine = engine
        self.reader = Reader(engine)
        self.idempotency = IdempotentRequests(engine, settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["request_id"] = uuid.uuid4().hex
        await super().__call__(scope, receive, send)

    async def execute_single(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_single(*args, **kwargs)
        except HTTPException as exc:
            if isinstance(exc.__cause__, InvalidOperationTypeError):
                # GraphQL over HTTP: a mutation over GET is 405 Method Not Allowed.
                raise HTTPException(405, exc.reason) from exc
            raise

    async def get_context(self, request: Any, response: Any) -> Context:
        request_id = request.state.request_id
        response.headers[REQUEST_ID_HEADER] = request_id
        principal = principal_for(request.headers, self.settings)
        return Context(
            request=request,
            response=response,
            settings=self.settings,
            engine=self.engine,
            reader=self.reader,
            principal=principal,
            request_id=request_id,
            idempotency=await self.idempotency.claim(request, principal.name),
        )

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        errors = result.errors or []
        request.state.error_codes = [(e.extensions or {}).get("code") for e in errors]
        if errors and result.data is None and all(e.path is None for e in errors):
            # The request failed before execution: per GraphQL over HTTP there is no data.
            request.state.request_error = True
            response.pop("data", None)
        return response

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        negotiated = GRAPHQL_RESPONSE_JSON in request.headers.get("accept", "")
        media_type = GRAPHQL_RESPONSE_JSON if negotiated else JSON
        refusal = self.idempotency.refusal(request, media_type)
        if refusal is not None:
            return refusal
        response = await super().run(request, context=context, root_value=root_value)
        if negotiated and isinstance(response, Response) and response.media_type == JSON:
            response.headers["content-type"] = GRAPHQL_RESPONSE_JSON
            if getattr(request.state, "request_error", False):
                response.status_code = 400
        if isinstance(response, Response):
            codes = getattr(request.state, "error_codes", ())
            status = max((STATUS_BY_CODE.get(code, 0) for code in codes), default=0)
            if status:
                response.status_code = status
            response = await self.idempotency.finish(request, response, media_type)
        return response
