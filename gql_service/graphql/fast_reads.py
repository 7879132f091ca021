"""The fast lane: a query the service has answered by compilation before, answered again
without strawberry's per-request machinery.

Once a document has been admitted (parsed, validated, within the limits), authorized and
answered by a compiled statement, ``KnownReads`` remembers it. The next request with the same
text and operation name, a plain JSON POST, is answered here with the same steps and the same
functions as the normal path, minus the generic layers around them: the caller is
authenticated and must hold the read scope, the cost is priced for these variables by the same
gate, the statement comes from the same compiler cache, and the response is the same bytes
(the differential test sends every read twice to hold it to that). Whatever does not fit (a
persisted query, an Idempotency-Key, a refused caller, a cost over the limit, a failed
statement) is left to the normal path, which answers it as always.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from graphql import GraphQLSchema, OperationDefinitionNode
from starlette.requests import Request
from starlette.responses import Response
from strawberry.http.parse_content_type import parse_content_type

from gql_service import metrics
from gql_service.graphql.admission import Gate
from gql_service.graphql.compiled_reads import STATS, fetch_row
from gql_service.graphql.compiler import CompiledRead, Compilers
from gql_service.graphql.extensions import log_operation
from gql_service.graphql.known_reads import KnownReads
from gql_service.graphql.negotiation import JSON, media_type
from gql_service.graphql.observability import operation_attributes, operation_span_name
from gql_service.graphql.request_body import RequestData, decode_json, request_data
from gql_service.principal import READ_SCOPE, Authenticator
from gql_service.read_session import ReadSession
from gql_service.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)


class FastReads:
    def __init__(
        self,
        schema: GraphQLSchema,
        settings: Settings,
        authenticator: Authenticator,
        gate: Gate,
        compilers: Compilers,
        known: KnownReads,
        tracer: Tracer | None = None,
    ) -> None:
        self.schema = schema
        self.settings = settings
        self.authenticator = authenticator
        self.gate = gate
        self.compilers = compilers
        self.known = known
        self.tracer = tracer

    async def answer(
        self, request: Request, reads: ReadSession, request_id: str
    ) -> Response | None:
        """The response to a known compiled query, or None for the normal path to answer."""
        start = time.perf_counter()
        if request.method != "POST" or "idempotency-key" in request.headers:
            return None
        if parse_content_type(request.headers.get("content-type", ""))[0] != JSON:
            return None
        try:
            data = request_data(
                decode_json(await request.body(), max_depth=self.settings.max_json_depth)
            )
        except Exception:  # the normal path refuses it, with its own error
            return None
        if not isinstance(data, RequestData) or data.extensions or data.document_id:
            return None
        variables = data.variables
        if not isinstance(data.query, str) or not isinstance(variables, dict | None):
            return None
        known = self.known.get(data.query, data.operation_name)
        if known is None:
            return None
        try:
            principal = await self.authenticator.authenticate(request.headers)
        except Exception:  # refused: the normal path says why, with its status and challenge
            return None
        if not principal.has_scope(READ_SCOPE):
            return None
        requested = self.gate.price(
            self.schema, known.document, data.query, known.operation, variables
        )
        maximum = self.settings.max_query_cost
        if requested > maximum:
            return None
        compiled = self.compilers.compile(
            self.schema,
            known.document,
            operation_name=data.operation_name,
            variables=variables,
            dialect=reads.dialect,
        )
        if compiled is None:
            return None
        operation = known.operation
        try:
            if self.tracer is None:
                row = await fetch_row(reads, compiled)
            else:
                row = await self._traced_fetch(reads, compiled, operation, start)
        except Exception:  # the normal path answers (an outage as SERVICE_UNAVAILABLE)
            return None
        body = orjson.dumps(
            {
                "data": compiled.data(row),
                "extensions": {"cost": {"requested": requested, "maximum": maximum}},
            }
        )
        STATS.compiled += 1
        STATS.fast += 1
        name = operation.name.value if operation.name else None
        metrics.note_operation(name, operation.operation.value, [])
        log_operation(request_id, name, operation.operation.value, start, 0)
        return Response(body, media_type=media_type(request), headers={"x-request-id": request_id})

    async def _traced_fetch(
        self,
        reads: ReadSession,
        compiled: CompiledRead,
        operation: OperationDefinitionNode,
        start: float,
    ) -> Any:
        """The statement under the operation span the normal path would have made."""
        assert self.tracer is not None
        name = operation.name.value if operation.name else None
        kind = operation.operation.value
        started = time.time_ns() - int((time.perf_counter() - start) * 1e9)
        with self.tracer.start_as_current_span(
            operation_span_name(kind, name),
            attributes={**operation_attributes(kind, name), "gql_service.fast_lane": True},
            start_time=started,
        ):
            return await fetch_row(reads, compiled)
